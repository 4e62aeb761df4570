import os, time, numpy as np, memlm
m = memlm.load("/tmp/hnsw_proto/m200k.memlm")
d = np.load("/tmp/hnsw_proto/train_tokens.npz")
C, T = m.windows(tokens=d["tokens"], block_lengths=d["lengths"])
print("train windows", C.shape, C.dtype, "last col == prev token?", np.array_equal(C[1:,-1][:5], d["tokens"][:5]), C[:3, -3:], d["tokens"][:3])
# dedupe contexts
u, inv = np.unique(C, axis=0, return_inverse=True)
inv = inv.ravel()
print("distinct contexts", u.shape[0], "of", C.shape[0])
# class counts per distinct context: CSR
order = np.argsort(inv, kind="stable")
pairs = np.stack([inv[order], T[order]], 1)
up, cnt = np.unique(pairs, axis=0, return_counts=True)
indptr = np.searchsorted(up[:,0], np.arange(u.shape[0]+1))
np.savez("/tmp/hnsw_proto/base.npz", ctx=u, cls=up[:,1], cnt=cnt, indptr=indptr)
t = np.load("/tmp/hnsw_proto/test_tokens.npz")
Q, QT = m.windows(tokens=t["tokens"], block_lengths=t["lengths"])
rng = np.random.default_rng(0)
sel = np.sort(rng.choice(Q.shape[0], 2000, replace=False))
Q, QT = Q[sel], QT[sel]
print("test windows", Q.shape, "padded at t-16:", (Q[:,0]==m.pad_id).mean())
t0 = time.perf_counter()
cls, votes, depth, dist = m.predict_batch(Q, top_k=100000, algorithm="ib1", k=1)
el = time.perf_counter()-t0
print(f"exact ib1 k=1: {el:.2f}s for {len(Q)} = {1000*el/len(Q):.2f} ms/inst (RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')})")
ntie = np.where(cls>=0, votes, 0).sum(1)
print("instances at min distance: median", np.median(ntie), "mean", ntie.mean(), "frac 1:", (ntie==1).mean(), "p90", np.percentile(ntie,90))
print("min dist: mean", dist.mean(), "quantiles", np.percentile(dist,[10,50,90]))
print("ib1 acc", (cls[:,0]==QT).mean())
ig = m.predict_batch(Q, algorithm="igtree")[0][:,0]
print("igtree acc", (ig==QT).mean())
np.savez("/tmp/hnsw_proto/test.npz", Q=Q, QT=QT, ib1=cls[:,0], dist=dist, ntie=ntie, ig=ig)
