import numpy as np, memlm
B = np.load("/tmp/hnsw_proto/base.npz"); TE = np.load("/tmp/hnsw_proto/test.npz")
ctx, cls, cnt, indptr = B["ctx"], B["cls"], B["cnt"], B["indptr"]
Q, QT, IB1, DIST, NTIE = TE["Q"], TE["QT"], TE["ib1"], TE["dist"], TE["ntie"]
m = memlm.load("/tmp/hnsw_proto/m200k.memlm")
W = np.array(m.info()["gain_ratio"])
# global class freq for tie-break
gfreq = np.bincount(cls, weights=cnt, minlength=m.n_ids)
tokset, cidx = np.unique(np.concatenate([ctx.ravel(), Q.ravel()]), return_inverse=True)
CTX_C = cidx[:ctx.size].reshape(ctx.shape); Q_C = cidx[ctx.size:].reshape(Q.shape)
NT = tokset.size

def exact_dist(q, cand):  # q (W,), cand indices
    return ((ctx[cand] != q) * W).sum(-1)

def vectors(dims, mode="concat", kind="gauss", seed=1234):
    """Per position codebook scaled by sqrt(w_i). concat: dims split evenly; sum: each position in all dims."""
    Wn = len(W)
    if mode == "concat":
        d = dims // Wn
        Xb = np.empty((ctx.shape[0], d*Wn), np.float32); Xq = np.empty((Q.shape[0], d*Wn), np.float32)
    else:
        d = dims
        Xb = np.zeros((ctx.shape[0], d), np.float32); Xq = np.zeros((Q.shape[0], d), np.float32)
    for i in range(Wn):
        rng = np.random.default_rng([seed, i])
        cb = rng.standard_normal((NT, d)).astype(np.float32)
        if kind == "unit":
            cb /= np.linalg.norm(cb, axis=1, keepdims=True)
        else:
            cb /= np.sqrt(d)
        cb *= np.sqrt(W[i])
        if mode == "concat":
            Xb[:, i*d:(i+1)*d] = cb[CTX_C[:, i]]; Xq[:, i*d:(i+1)*d] = cb[Q_C[:, i]]
        else:
            Xb += cb[CTX_C[:, i]]; Xq += cb[Q_C[:, i]]
    return Xb, Xq

def vote(nbrs):
    """majority over the summed class counts of the given distinct contexts; ties by global freq"""
    c = np.concatenate([cls[indptr[j]:indptr[j+1]] for j in nbrs]); n = np.concatenate([cnt[indptr[j]:indptr[j+1]] for j in nbrs])
    u, inv = np.unique(c, return_inverse=True); s = np.bincount(inv, weights=n)
    best = np.flatnonzero(s == s.max())
    return u[best[np.argmax(gfreq[u[best]])]]
