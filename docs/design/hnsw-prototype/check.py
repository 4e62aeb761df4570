from lib import *
# verify exact distance formula vs memlm's IB1 min distance on 100 queries (brute force)
ok=0
for q in range(100):
    dd = ((ctx != Q[q]) * W).sum(1)
    ok += abs(dd.min()-DIST[q])<1e-9
print("brute-force min distance equals memlm ib1 distance:", ok, "/100")
print("distinct tokens", NT)
