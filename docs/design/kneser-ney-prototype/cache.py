"""Document cache prototype: n-gram counts (orders 1..4) of the text scored so far, interpolated with KN.
p = (1 - sum_k lam_k e_k) p_KN + sum_k lam_k e_k c_k(h,w)/c_k(h)     (e_k = 1 if context h of order k is in the cache)
Unigram cache optionally exponentially decayed.  lam fitted on held-out TRAINING text (last ~5% of austen_train,
removed from the counts), then applied unchanged to Persuasion with the full model."""
import numpy as np, sys, time
from collections import defaultdict
import kn

K = 4  # cache orders 1..K

def cache_stats(tok, lengths, decay=None):
    """per token: f[k] = c_k(h,w)/c_k(h) from the history, e[k] = 1 if c_k(h) > 0"""
    n = len(tok); f = np.zeros((K + 1, n)); e = np.zeros((K + 1, n))
    cnt = [defaultdict(float) for _ in range(K)]; ctx = [defaultdict(float) for _ in range(K)]
    i = 0; tot_dec = 0.0; dec = defaultdict(float); t_last = {}
    for L in lengths:
        blk = [kn.PAD] + tok[i:i + L].tolist()
        for j in range(1, L + 1):
            w = blk[j]
            for k in range(K):                      # k = context length
                if j - k < 0: break
                h = tuple(blk[j - k:j])
                ch = ctx[k].get(h, 0.0)
                if ch > 0:
                    f[k, i + j - 1] = cnt[k].get(h + (w,), 0.0) / ch; e[k, i + j - 1] = 1
            if decay is not None:                   # decayed unigram cache (lazy decay by position)
                if tot_dec > 0:
                    cw = dec.get(w, 0.0) * decay ** (i + j - 1 - t_last.get(w, 0))
                    f[K, i + j - 1] = cw / tot_dec; e[K, i + j - 1] = 1
            for k in range(K):
                if j - k < 0: break
                h = tuple(blk[j - k:j])
                ctx[k][h] += 1; cnt[k][h + (w,)] += 1
            if decay is not None:
                pos = i + j - 1
                dec[w] = dec.get(w, 0.0) * decay ** (pos - t_last.get(w, pos)) + 1.0; t_last[w] = pos
                tot_dec = tot_dec * decay + 1.0
        i += L
    return f, e

def mix(lam, p, f, e):
    return p * (1 - (lam[:, None] * e).sum(0)) + (lam[:, None] * e * f).sum(0)

def fit(p, f, e, mask):
    nl = len(f)
    obj = lambda l: -np.log(mix(l, p[mask], f[:, mask], e[:, mask])).mean()
    lam = np.zeros(nl)
    for sweep in range(6):                      # coordinate descent, golden-section per weight on [0, 0.6]
        for k in range(nl):
            lo, hi = 0.0, 0.6; g = 0.618
            for _ in range(40):
                a, b = hi - g * (hi - lo), lo + g * (hi - lo)
                la, lb = lam.copy(), lam.copy(); la[k] = a; lb[k] = b
                if obj(la) < obj(lb): hi = b
                else: lo = a
            lam[k] = (lo + hi) / 2
    return lam, obj(lam)

if __name__ == '__main__':
    W = int(sys.argv[1]); decay = float(sys.argv[2]) if len(sys.argv) > 2 else None
    z = np.load('tok.npz'); tr, trl, te, tel, na, nab = z['tr'], z['trl'], z['te'], z['tel'], int(z['na']), int(z['nab'])
    # held-out: last austen blocks totalling >= 5% of austen_train tokens
    cum = np.cumsum(trl[:nab][::-1]); nb = int(np.searchsorted(cum, 0.05 * na)) + 1
    ho_len = trl[nab - nb:nab]; ho_tok_n = int(ho_len.sum())
    ho = tr[na - ho_tok_n:na]
    keep = np.r_[tr[:na - ho_tok_n], tr[na:]]; keep_l = np.r_[trl[:nab - nb], trl[nab:]]
    print(f'held-out: {nb} blocks, {ho_tok_n} tokens; counts from {len(keep)} tokens')
    m = kn.build(keep, keep_l, W, verbose=False)
    p_ho, _ = kn.score(m, ho, ho_len); seen_ho = np.isin(ho, keep)
    f, e = cache_stats(ho, ho_len, decay)
    if decay is None: f, e = f[:K], e[:K]
    base = np.exp(-np.log(p_ho[seen_ho]).mean())
    lam, nll = fit(p_ho, f, e, seen_ho)
    print(f'held-out ppl_seen no cache {base:.2f}, with cache {np.exp(nll):.2f}; lambda {np.round(lam,4)}')
    del m
    m = kn.build(tr, trl, W, verbose=False)
    p, _ = kn.score(m, te, tel); seen = np.isin(te, tr)
    t0 = time.time(); f, e = cache_stats(te, tel, decay); tc = time.time() - t0
    if decay is None: f, e = f[:K], e[:K]
    pc = mix(lam, p, f, e)
    a, b = np.exp(-np.log(p[seen]).mean()), np.exp(-np.log(pc[seen]).mean())
    print(f'Persuasion W={W} decay={decay}: ppl_seen {a:.2f} -> with cache {b:.2f} ({100*(1-b/a):.1f}% lower); '
          f'ppl_all {np.exp(-np.log(p).mean()):.2f} -> {np.exp(-np.log(pc).mean()):.2f}; cache stats {tc:.1f}s (python dicts)')
    lam2, nll2 = fit(p, f, e, seen)
    print(f'  (oracle lambda fitted on Persuasion itself, for reference only: {np.round(lam2,4)} ppl {np.exp(nll2):.2f})')
    np.save(f'pc_W{W}.npy', pc)
