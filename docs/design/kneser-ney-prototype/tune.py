"""Discount tuning on held-out TRAINING text (last ~5% of austen_train, removed from the counts):
one multiplicative factor per order on (D1, D2, D3+), coordinate search; then applied to the full model on Persuasion."""
import numpy as np, sys
import kn
W = int(sys.argv[1])
z = np.load('tok.npz'); tr, trl, te, tel, na, nab = z['tr'], z['trl'], z['te'], z['tel'], int(z['na']), int(z['nab'])
cum = np.cumsum(trl[:nab][::-1]); nb = int(np.searchsorted(cum, 0.05 * na)) + 1
ho_len = trl[nab - nb:nab]; nh = int(ho_len.sum()); ho = tr[na - nh:na]
keep = np.r_[tr[:na - nh], tr[na:]]; keep_l = np.r_[trl[:nab - nb], trl[nab:]]
def setf(m, f):
    for o, s in zip(m['orders'], f):
        if 'D0' not in o: o['D0'] = o['D'].copy()
        o['D'] = np.minimum(o['D0'] * s, np.array([0, 1, 2, 3]) - np.array([0, 1e-3, 1e-3, 1e-3]));  # D_i < i keeps the sum at 1
        N1, N2, N3 = o["N"]
        o['gamma'] = (o['D'][1] * N1 + o['D'][2] * N2 + o['D'][3] * N3) / o['A']
m = kn.build(keep, keep_l, W, verbose=False)
ids = kn.context_ids(m, ho, ho_len); sh = np.isin(ho, keep)
def ho_nll(f):
    setf(m, f); return -np.log(kn.prob(m, ids, ho)[sh]).mean()
f = np.ones(W + 1); best = ho_nll(f); print('held-out ppl, KN discounts:', round(np.exp(best), 2))
for sweep in range(2):
    for k in range(W + 1):
        for s in (0.8, 0.9, 1.1, 1.2, 1.3):
            g = f.copy(); g[k] = s * f[k] if sweep else s
            v = ho_nll(g)
            if v < best: best, f = v, g
    print('sweep', sweep, 'factors', np.round(f, 3), 'held-out ppl', round(np.exp(best), 2), flush=True)
del m
m = kn.build(tr, trl, W, verbose=False); seen = np.isin(te, tr)
p0, _ = kn.score(m, te, tel); setf(m, f); p1, _ = kn.score(m, te, tel)
print('sum over vocab after tuning:', [round(x, 9) for x in kn.check_sum(m, te, tel, [0, 5, 50000])])
print(f'Persuasion W={W}: KN discounts {np.exp(-np.log(p0[seen]).mean()):.2f}, held-out-tuned {np.exp(-np.log(p1[seen]).mean()):.2f}')
