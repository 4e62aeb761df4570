# Tokenise exactly as memlm does (memlm.tokenize: blocks at blank lines, each block encoded on its own)
import numpy as np, memlm
D='/work/shared/data/'
tr,trl,spec,_=memlm.tokenize([D+'austen_train.txt.gz',D+'kjv.txt.gz'],tokenizer=D+'gpt2-tokenizer.json')
a,al,_,_=memlm.tokenize([D+'austen_train.txt.gz'],tokenizer=D+'gpt2-tokenizer.json')
te,tel,_,_=memlm.tokenize([D+'austen_persuasion_test.txt.gz'],tokenizer=D+'gpt2-tokenizer.json')
np.savez('tok.npz',tr=tr.astype(np.int32),trl=trl.astype(np.int64),te=te.astype(np.int32),tel=tel.astype(np.int64),na=len(a),nab=len(al))
seen=np.isin(te,tr)
print('train',len(tr),'blocks',len(trl),'austen',len(a),len(al),'test',len(te),'blocks',len(tel),'seen',seen.sum())
