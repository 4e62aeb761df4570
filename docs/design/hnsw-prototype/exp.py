import sys, time, hnswlib, resource
from lib import *
dims, mode, kind, M = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
efs = [int(e) for e in sys.argv[5].split(',')] if len(sys.argv)>5 else [10, 20, 50, 100, 200]
t0=time.perf_counter(); Xb, Xq = vectors(dims, mode, kind); tv=time.perf_counter()-t0
D = Xb.shape[1]
# check expectation of the distance approximation on random pairs
rng=np.random.default_rng(5); a=rng.integers(0,len(ctx),3000); b=rng.integers(0,len(ctx),3000)
l2=((Xb[a]-Xb[b])**2).sum(1); ov=2*((ctx[a]!=ctx[b])*W).sum(1)
idx = hnswlib.Index(space="l2", dim=D); idx.init_index(max_elements=len(Xb), M=M, ef_construction=200, random_seed=100)
idx.set_num_threads(1)
r0=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0=time.perf_counter(); idx.add_items(Xb, np.arange(len(Xb))); tb=time.perf_counter()-t0
idx.save_index(f"/tmp/hnsw_proto/idx_{dims}_{mode}_{kind}_{M}.bin"); import os
fsz=os.path.getsize(f"/tmp/hnsw_proto/idx_{dims}_{mode}_{kind}_{M}.bin"); os.remove(f"/tmp/hnsw_proto/idx_{dims}_{mode}_{kind}_{M}.bin")
bf = hnswlib.BFIndex(space="l2", dim=D); bf.init_index(max_elements=len(Xb)); bf.add_items(Xb, np.arange(len(Xb)))
bfl, bfd = bf.knn_query(Xq, k=10)
# brute force k=1 in vector space: exact-dist upper bound of the vector approximation itself
bf1 = bfl[:,0]
ex_bf = np.array([exact_dist(Q[q], [bf1[q]])[0] for q in range(len(Q))])
print(f"== dims={D} mode={mode} kind={kind} M={M}: vectors {tv:.1f}s; l2/(2*overlap) mean {np.mean(l2/ov):.3f} corr {np.corrcoef(l2,ov)[0,1]:.3f}; build {tb:.1f}s 1 thread ({len(Xb)/tb:.0f}/s); index file {fsz/len(Xb):.0f} B/entry (vectors {4*D} B); BF k=1 hits exact min dist {np.mean(np.abs(ex_bf-DIST)<1e-9):.3f}")
for ef in efs:
    idx.set_ef(max(ef,10))
    t0=time.perf_counter(); L1, _ = idx.knn_query(Xq, k=1); t1=time.perf_counter()-t0
    t0=time.perf_counter(); L10, _ = idx.knn_query(Xq, k=10); t10=time.perf_counter()-t0
    rec = np.mean([len(set(L10[q])&set(bfl[q]))/10 for q in range(len(Q))])
    ex1 = np.array([exact_dist(Q[q], [L1[q,0]])[0] for q in range(len(Q))])
    pred1 = np.array([vote([L1[q,0]]) for q in range(len(Q))])
    # rerank: of the 10 candidates keep those at min exact distance, vote
    pr, ex10 = [], []
    for q in range(len(Q)):
        dd = exact_dist(Q[q], L10[q]); keep = L10[q][np.abs(dd-dd.min())<1e-9]
        pr.append(vote(keep)); ex10.append(dd.min())
    pr=np.array(pr); ex10=np.array(ex10)
    K=100 if ef>=100 else ef
    t0=time.perf_counter(); LK, _ = idx.knn_query(Xq, k=K); tk=time.perf_counter()-t0
    prk=[]; exk=[]
    for q in range(len(Q)):
        dd = exact_dist(Q[q], LK[q]); keep = LK[q][np.abs(dd-dd.min())<1e-9]
        prk.append(vote(keep)); exk.append(dd.min())
    print(f"   k={K} rerank: {1e6*tk/len(Q):.0f}us/q agree {np.mean(np.array(prk)==IB1):.3f} exact-min-dist {np.mean(np.abs(np.array(exk)-DIST)<1e-9):.3f}")
    print(f"ef={ef:3d} k1 {1e6*t1/len(Q):6.1f}us/q k10 {1e6*t10/len(Q):6.1f}us/q | recall@10 {rec:.3f} | k=1: agree {np.mean(pred1==IB1):.3f} exact-min-dist {np.mean(np.abs(ex1-DIST)<1e-9):.3f} | k=10 rerank: agree {np.mean(pr==IB1):.3f} exact-min-dist {np.mean(np.abs(ex10-DIST)<1e-9):.3f}")
print("maxrss MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)
