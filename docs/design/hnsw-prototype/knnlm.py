import sys, time, hnswlib
from lib import *
kind = sys.argv[1]  # overlap | distributional
K = 16
# held-out training windows for fitting
H = np.load("/tmp/hnsw_proto/heldtrain_tokens.npz"); tokH = H["tokens"]
# block lengths of heldtrain were not cut; treat held-out tokens as one stream of blocks of 200 for simplicity
HC, HT = m.windows(tokens=tokH, block_lengths=np.array([len(tokH)], dtype=np.uint64))
rng = np.random.default_rng(1); s = np.sort(rng.choice(len(HC), 2000, replace=False)); HC, HT = HC[s], HT[s]
def codes(X):  # token ids -> compact ids in tokset (unknown -> -1)
    pos = np.searchsorted(tokset, X); pos = np.minimum(pos, NT-1); return np.where(tokset[pos]==X, pos, -1)
d = np.load("/tmp/hnsw_proto/train_tokens.npz"); tok = d["tokens"]
if kind == "distributional":
    t0=time.perf_counter()
    c = codes(tok); V = NT + 1  # +1 for unknown
    M_ = np.zeros((V, V), np.float32)
    for off in (1, 2):
        np.add.at(M_, (c[:-off], c[off:]), 1); np.add.at(M_, (c[off:], c[:-off]), 1)
    tot = M_.sum(); r = M_.sum(1, keepdims=True); cc = M_.sum(0, keepdims=True) ** 0.75; cc = cc / cc.sum() * tot
    with np.errstate(divide="ignore", invalid="ignore"):
        P = np.log(M_ * tot / (r * cc)); P[~np.isfinite(P)] = 0; P = np.maximum(P, 0)
    # randomized SVD, 16 dims
    G = np.random.default_rng(2).standard_normal((V, 40)).astype(np.float32)
    Y = P @ G; Y = P @ (P.T @ Y); Qm, _ = np.linalg.qr(Y); Bm = Qm.T @ P
    Ub, S, _ = np.linalg.svd(Bm, full_matrices=False); U = (Qm @ Ub)[:, :16] * np.sqrt(S[:16])
    U /= np.linalg.norm(U, axis=1, keepdims=True) + 1e-9
    U = np.vstack([U, np.zeros((1, 16), np.float32)])  # unknown code -1 -> last row (zero)
    print(f"PPMI+SVD token vectors: {time.perf_counter()-t0:.1f}s"); del M_, P
    def vec(X):
        Cx = codes(X); return np.concatenate([np.sqrt(W[i]) * U[Cx[:, i]] for i in range(X.shape[1])], 1).astype(np.float32)
else:
    cbs = []
    for i in range(len(W)):
        cb = np.random.default_rng([1234, i]).standard_normal((NT + 1, 16)).astype(np.float32); cb /= np.linalg.norm(cb, axis=1, keepdims=True); cbs.append(cb * np.sqrt(W[i]))
    def vec(X):
        Cx = codes(X); return np.concatenate([cbs[i][Cx[:, i]] for i in range(X.shape[1])], 1)
Xb = vec(ctx)
idx = hnswlib.Index(space="l2", dim=Xb.shape[1]); idx.init_index(len(Xb), M=16, ef_construction=100, random_seed=1); idx.set_num_threads(1)
t0=time.perf_counter(); idx.add_items(Xb); print(f"{kind}: build {time.perf_counter()-t0:.0f}s (M=16 efc=100, 1 thread)"); idx.set_ef(100)
def knn_p(C, Tg, T):
    L, D2 = idx.knn_query(vec(C), k=K)
    out = np.zeros((len(C), len(T)))
    for q in range(len(C)):
        for a, temp in enumerate(T):
            w = np.exp(-(D2[q] - D2[q].min()) / temp); w /= w.sum(); p = 0.0
            for j, wj in zip(L[q], w):
                cl, cn = cls[indptr[j]:indptr[j+1]], cnt[indptr[j]:indptr[j+1]]
                p += wj * cn[cl == Tg[q]].sum() / cn.sum()
            out[q, a] = p
    return out
Ts = [0.25, 0.5, 1, 2, 4, 8]; lams = np.linspace(0, 0.6, 25)
def evaluate(C, Tg, name, fit=None):
    lp, _, oov = m.score_windows(C, Tg, cache=False); ptrie = 10.0 ** lp; seen = ~oov
    pk = knn_p(C, Tg, Ts)
    best = None
    for a, temp in enumerate(Ts):
        for lam in lams:
            ll = np.log((1 - lam) * ptrie[seen] + lam * pk[seen, a]).mean()
            if best is None or ll > best[0]: best = (ll, temp, lam)
    ppl_trie = np.exp(-np.log(ptrie[seen]).mean())
    if fit is None:
        print(f"{name}: trie ppl {ppl_trie:.1f}; best fit T={best[1]} lambda={best[2]:.3f} -> ppl {np.exp(-best[0]):.1f}; neighbour-set hit rate {np.mean(pk[seen,2]>0):.3f}")
        return best
    temp, lam = fit[1], fit[2]; a = Ts.index(temp)
    ppl = np.exp(-np.log((1 - lam) * ptrie[seen] + lam * pk[seen, a]).mean())
    print(f"{name}: trie ppl (seen, no cache) {ppl_trie:.1f}; kNN-LM ppl with fitted T={temp} lambda={lam:.3f}: {ppl:.1f} ({100*(ppl/ppl_trie-1):+.1f}%)")
fit = evaluate(HC, HT, "held-out training (fit)")
evaluate(Q, QT, "Persuasion 2000", fit)
evaluate(Q, QT, "Persuasion 2000 (oracle fit)")
