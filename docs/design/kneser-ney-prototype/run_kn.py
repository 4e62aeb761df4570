import numpy as np, sys, time, resource, pickle
import kn
W = int(sys.argv[1])
z = np.load('tok.npz'); tr, trl, te, tel = z['tr'], z['trl'], z['te'], z['tel']
m = kn.build(tr, trl, W)
t0 = time.time(); p, ids = kn.score(m, te, tel); ts = time.time() - t0
seen = np.isin(te, tr)
print(f'W={W} ppl_seen {np.exp(-np.log(p[seen]).mean()):.2f} ppl_all {np.exp(-np.log(p).mean()):.2f}  score {ts:.2f}s (numpy, vectorised)')
kl = np.load('kenlm_log10.npy') * np.log(10)
print('mean log-prob diff vs KenLM on seen (nats/token, +ve = better):', (np.log(p[seen]) - kl[seen]).mean())
# longest matched context length per token
ml = np.zeros(len(te), int)
for k, c in enumerate(ids): ml[c >= 0] = k
print('longest matched context length histogram (seen):', np.bincount(ml[seen]).tolist())
s = kn.check_sum(m, te, tel, [0, 1, 5, 1000, 50000, 104000])
print('sum over vocab:', [f'{x:.12f}' for x in s])
np.save(f'p_W{W}.npy', p)
print('peak RSS MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
