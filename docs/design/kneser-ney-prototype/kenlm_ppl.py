import numpy as np, pandas as pd
t=pd.read_csv('/work/shared/data/kenlm/persuasion_o5.tsv.gz',sep='\t')
z=np.load('tok.npz'); te=z['te']
assert len(t)==len(te) and (t.token_id.values==te).all()
s=t[t.oov==0]
print('rows',len(t),'seen',len(s),'ppl_seen %.2f'%10**(-s.kenlm_log10.mean()),'ppl_all %.2f'%10**(-t.kenlm_log10.mean()))
print('order histogram (seen):',s.ngram_order.value_counts().sort_index().to_dict())
np.save('kenlm_log10.npy',t.kenlm_log10.values)
