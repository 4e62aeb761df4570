"""Storage statistics per order, backoff-form (KenLM-style) stored probabilities, quantisation, export for the C scorer."""
import numpy as np, sys, os
import kn
W = int(sys.argv[1])
z = np.load('tok.npz'); tr, trl, te, tel = z['tr'], z['trl'], z['te'], z['tel']
m = kn.build(tr, trl, W, verbose=False)
O = m['orders']; V, B = kn.V, kn.B
# ---- stored (interpolated) probability of every seen n-gram, bottom-up ----
for k, o in enumerate(O):
    c = o['ngram_keys'] // V; w = o['ngram_keys'] % V; a = o['adj']
    if k == 0: lower = m['base'][w]
    else:
        parent = O[k]['ctx_keys'][c] // B       # context h' = h minus its farthest token
        gi = kn.lookup(O[k-1]['ngram_keys'], parent * V + w); assert (gi >= 0).all()
        lower = O[k-1]['pstore'][gi]
    o['pstore'] = (a - o['D'][np.minimum(a, 3)]) / o['A'][c] + o['gamma'][c] * lower
# ---- statistics ----
tot_ctx = tot_ent = tot_ctx2 = tot_ent2 = tot_tail = 0
print('| order | ctx len | distinct contexts | contexts with c(h)>=2 | singleton contexts | n-grams (h,w) | n-grams under c(h)>=2 | adj==raw % (lower orders) |')
print('|---|---|---|---|---|---|---|---|')
for k, o in enumerate(O):
    c = o['ngram_keys'] // V
    raw_ctx = np.bincount(c, weights=o['raw'], minlength=len(o['ctx_keys']))
    multi = raw_ctx >= 2
    ent2 = multi[c].sum()
    same = (o['adj'] == o['raw']).mean() * 100
    print(f'| {k+1} | {k} | {len(o["ctx_keys"]):,} | {multi.sum():,} | {(~multi).sum():,} | {len(c):,} | {ent2:,} | {same:.1f} |')
    tot_ctx += len(o['ctx_keys']); tot_ent += len(c); tot_ctx2 += multi.sum(); tot_ent2 += ent2
    o['multi'] = multi
print(f'| total | | {tot_ctx:,} | {tot_ctx2:,} | | {tot_ent:,} | {tot_ent2:,} | |')
# ---- backoff-form scoring (one descent, walk up), optionally quantised ----
ids = kn.context_ids(m, te, tel); seen = np.isin(te, tr); tgt = te.astype(np.int64)
def quant(x, bits):
    if bits is None: return x
    lx = np.log(x); q = np.quantile(lx, np.linspace(0, 1, 2**bits + 1))
    b = np.clip(np.searchsorted(q, lx, side='right') - 1, 0, 2**bits - 1)
    cnt = np.bincount(b, minlength=2**bits); sm = np.bincount(b, weights=lx, minlength=2**bits)
    cent = np.where(cnt > 0, sm / np.maximum(cnt, 1), q[:-1])
    return np.exp(cent[b])
def backoff_ppl(bits):
    P = [quant(o['pstore'], bits) for o in O]; G = [quant(np.maximum(o['gamma'], 1e-300), bits) for o in O]
    n = len(tgt); p = np.zeros(n); done = np.zeros(n, bool); bo = np.ones(n)
    for k in range(len(O) - 1, -1, -1):
        c = ids[k]; act = (c >= 0) & ~done
        gi = kn.lookup(O[k]['ngram_keys'], np.where(act, c * V + tgt, -1))
        hit = act & (gi >= 0)
        p[hit] = P[k][gi[hit]] * bo[hit]; done |= hit
        miss = act & ~hit
        bo[miss] *= G[k][c[miss]]
    p[~done] = bo[~done] * m['base'][tgt[~done]]
    return np.exp(-np.log(p[seen]).mean()), p
ref, _ = kn.score(m, te, tel)
for bits in (None, 16, 8):
    ppl, p = backoff_ppl(bits)
    extra = f' (max |rel diff| vs recursive form {np.abs(p/ref-1).max():.2e})' if bits is None else ''
    print(f'backoff form, {bits or "float64"} bits: ppl_seen {ppl:.2f}{extra}')
# ---- export for the C scorer: per level CSR ----
os.makedirs(f'export_W{W}', exist_ok=True)
for k, o in enumerate(O):
    ck = o['ctx_keys']; lab = (ck % B).astype(np.int32)
    nctx = len(ck)
    ec = o['ngram_keys'] // V
    ent_start = np.searchsorted(ec, np.arange(nctx + 1)).astype(np.int32)
    if k + 1 < len(O):
        par = O[k+1]['ctx_keys'] // B
        ch_start = np.searchsorted(par, np.arange(nctx + 1)).astype(np.int32)
    else:
        ch_start = np.zeros(nctx + 1, np.int32)
    d = f'export_W{W}/L{k}_'
    lab.tofile(d + 'lab'); ch_start.tofile(d + 'ch'); ent_start.tofile(d + 'es')
    (o['ngram_keys'] % V).astype(np.int32).tofile(d + 'ew'); o['pstore'].astype(np.float32).tofile(d + 'ep')
    o['gamma'].astype(np.float32).tofile(d + 'g')
    np.array([nctx, len(ec)], np.int64).tofile(d + 'n')
m['base'].astype(np.float32).tofile(f'export_W{W}/base')
te.astype(np.int32).tofile(f'export_W{W}/test'); tel.astype(np.int32).tofile(f'export_W{W}/testlen')
seen.astype(np.uint8).tofile(f'export_W{W}/seen')
