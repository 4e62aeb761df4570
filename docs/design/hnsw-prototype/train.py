import sys, time, numpy as np
sys.path.insert(0, "/work/main")
from bench.common import first_tokens
import memlm
t=time.time()
tok, lens = first_tokens(200_000, ["austen_train.txt.gz"])
print("tokens", tok.size, len(lens), time.time()-t)
spec = memlm.TokenizerSpec.from_file()
t=time.time()
m = memlm.train_token_ids(tok, lens, spec, width=16, algorithms="igtree,ib1", output="/tmp/hnsw_proto/m200k.memlm", keep_tokens=True)
print("train", time.time()-t)
np.savez("/tmp/hnsw_proto/train_tokens.npz", tokens=tok, lengths=lens)
# heldout training text for lambda/T fitting: next 20k tokens after 200k
tok2, lens2 = first_tokens(230_000, ["austen_train.txt.gz"])
np.savez("/tmp/hnsw_proto/heldtrain_tokens.npz", tokens=tok2[200_000:], lengths=lens2)
tt, tl = first_tokens(None, ["austen_persuasion_test.txt.gz"])
np.savez("/tmp/hnsw_proto/test_tokens.npz", tokens=tt, lengths=tl)
info = m.info()
print({k: (v if not isinstance(v,(list,dict)) or len(str(v))<400 else str(v)[:400]) for k,v in info.items()})
