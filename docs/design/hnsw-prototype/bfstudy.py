import time
from lib import *
nq = 400
Qs = Q[:nq]; E = np.stack([((ctx != Qs[q]) * W).sum(1) for q in range(nq)]).astype(np.float32)  # exact distances
isnn = np.abs(E - DIST[:nq, None]) < 1e-6
print("exact nearest set size: median", np.median(isnn.sum(1)))
for mode, kind, dims in [("sum","gauss",64),("sum","gauss",128),("sum","gauss",256),("concat","gauss",256),("concat","unit",256),("concat","unit",64),("concat","unit",128),("sum","gauss",512),("concat","unit",512),("concat","unit",1024),("concat","unit",2048)]:
    t0=time.perf_counter()
    Xb, Xq = vectors(dims, mode, kind); Xq = Xq[:nq]
    L = (Xb**2).sum(1)[None, :] - 2 * Xq @ Xb.T
    order = np.argsort(L, axis=1)
    # rank of the first exact-nearest item in vector order
    r = np.argmax(np.take_along_axis(isnn, order, 1), axis=1)
    # correlation l2 vs exact over all (sample)
    c = np.corrcoef(L[:, ::50].ravel(), E[:, ::50].ravel())[0,1]
    print(f"{mode:6s} {kind:5s} D={Xb.shape[1]:4d}: corr {c:.3f}; vector-BF top-1 is an exact nearest {np.mean(r==0):.3f}; exact nearest within top 10 {np.mean(r<10):.3f}, top 100 {np.mean(r<100):.3f}, top 1000 {np.mean(r<1000):.3f}; median rank {np.median(r):.0f} ({time.perf_counter()-t0:.0f}s)", flush=True)
    del Xb, L, order
