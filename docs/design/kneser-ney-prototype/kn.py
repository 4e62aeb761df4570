"""Interpolated modified Kneser-Ney (Chen & Goodman 1998, KenLM-style) over all contexts up to W.
Context = suffix of the left context (nearest token first), truncated at the block start by ONE pad
symbol (like KenLM's <s>): a context never extends past the pad.  Exact integer keys (no hashing)."""
import numpy as np, time

V = 50257            # GPT-2 vocabulary (targets)
PAD = V              # padding symbol, only ever in contexts
B = V + 1            # radix for context keys (tokens + pad)
import os
UNK_CLASS = os.environ.get('UNK_CLASS', '1') == '1'

def dist_to_start(lengths, n):
    starts = np.repeat(np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    assert len(starts) == n
    return np.arange(n) - starts            # number of real tokens to the left inside the block

def ctx_token(tok, d, k):
    """token at distance k for every position (PAD when k == d+1, -1 when beyond)"""
    idx = np.arange(len(tok)) - k
    out = np.where(k <= d, tok[np.maximum(idx, 0)], np.where(k == d + 1, PAD, -1))
    return out.astype(np.int64)

def build(tok, lengths, W, verbose=True):
    t0 = time.time()
    tok = tok.astype(np.int64); n = len(tok); d = dist_to_start(lengths, n)
    orders = []
    ctx = np.zeros(n, np.int64)             # order-0 context id: root
    g_prev = None
    ctx_keys = [np.zeros(1, np.int64)]
    gs = []
    for k in range(W + 1):                  # k = context length
        if k > 0:
            valid = (k <= d + 1) & (ctx >= 0)
            key = np.where(valid, ctx * B + np.maximum(ctx_token(tok, d, k), 0), -1)
            uk, inv = np.unique(key[valid], return_inverse=True)
            ctx = np.full(n, -1, np.int64); ctx[valid] = inv
            ctx_keys.append(uk)
        valid = ctx >= 0
        gkey = ctx[valid] * V + tok[valid]
        ug, ginv, gcnt = np.unique(gkey, return_inverse=True, return_counts=True)
        g = np.full(n, -1, np.int64); g[valid] = ginv
        gs.append(g)
        orders.append(dict(ngram_keys=ug, raw=gcnt))
    # adjusted counts: raw at top order and for n-grams whose context ends in the pad (<s>-initial);
    # otherwise the number of distinct one-token-longer left extensions N1+(. h w)
    for k in range(W + 1):
        o = orders[k]; a = o['raw'].copy()
        if k < W:
            gk, gk1 = gs[k], gs[k + 1]
            m = gk1 >= 0
            u, first = np.unique(gk1[m], return_index=True)
            parent = gk[m][first]
            cont = np.bincount(parent, minlength=len(a))
            ext = cont > 0                   # extendable n-grams (context not ending in pad)
            a[ext] = cont[ext]
        o['adj'] = a
        nc = [(a == i).sum() for i in (1, 2, 3, 4)]
        Y = nc[0] / (nc[0] + 2 * nc[1])
        D = np.array([0.0, 1 - 2 * Y * nc[1] / nc[0], 2 - 3 * Y * nc[2] / nc[1], 3 - 4 * Y * nc[3] / nc[2]])
        o['D'] = D; o['nc'] = nc
        c = o['ngram_keys'] // V
        nctx = len(ctx_keys[k])
        A = np.bincount(c, weights=a, minlength=nctx)
        N1 = np.bincount(c, weights=(a == 1), minlength=nctx)
        N2 = np.bincount(c, weights=(a == 2), minlength=nctx)
        N3 = np.bincount(c, weights=(a >= 3), minlength=nctx)
        o['A'] = A; o['gamma'] = (D[1] * N1 + D[2] * N2 + D[3] * N3) / A
        o['N'] = (N1, N2, N3)
        o['ctx_keys'] = ctx_keys[k]
        if verbose:
            print(f'order {k+1} (ctx len {k}): contexts {nctx:,} ngrams {len(a):,} '
                  f'n1..n4 {nc} D {np.round(D[1:],3)}', flush=True)
    del gs
    # base (order-0) distribution, like KenLM: uniform over the seen types + one <unk> class, whose share
    # is spread over the unseen vocabulary so every token keeps a positive probability and the sum is 1
    seen = np.zeros(V, bool); seen[orders[0]['ngram_keys']] = True
    S = seen.sum()
    base = np.where(seen, 1.0 / (S + 1), 1.0 / ((S + 1) * (V - S))) if UNK_CLASS else np.full(V, 1.0 / V)
    if verbose: print(f'build {time.time()-t0:.1f}s', flush=True)
    return dict(W=W, orders=orders, base=base)

def lookup(sorted_keys, q):
    i = np.searchsorted(sorted_keys, q)
    i = np.minimum(i, len(sorted_keys) - 1)
    return np.where(sorted_keys[i] == q, i, -1)

def context_ids(model, tok, lengths):
    """per order, the test context's id in the training trie (-1 if unseen): one descent per token"""
    tok = tok.astype(np.int64); n = len(tok); d = dist_to_start(lengths, n)
    ids = [np.zeros(n, np.int64)]
    ctx = ids[0]
    for k in range(1, model['W'] + 1):
        valid = (k <= d + 1) & (ctx >= 0)
        q = np.where(valid, ctx * B + np.maximum(ctx_token(tok, d, k), 0), -1)
        ctx = np.where(valid, lookup(model['orders'][k]['ctx_keys'], q), -1)
        ids.append(ctx)
    return ids

def prob(model, ids, targets):
    """bottom-up interpolation; ids: list (per order) of context id arrays, targets aligned"""
    targets = targets.astype(np.int64)
    p = model['base'][targets]
    for k, o in enumerate(model['orders']):
        c = ids[k]; m = c >= 0
        if not m.any(): break
        gi = lookup(o['ngram_keys'], np.where(m, c * V + targets, -1))
        a = np.where(gi >= 0, o['adj'][np.maximum(gi, 0)], 0)
        disc = o['D'][np.minimum(a, 3)]
        cm = np.maximum(c, 0)
        pk = np.maximum(a - disc, 0) / o['A'][cm] + o['gamma'][cm] * p
        p = np.where(m, pk, p)
    return p

def score(model, tok, lengths):
    ids = context_ids(model, tok, lengths)
    return prob(model, ids, tok), ids

def check_sum(model, tok, lengths, positions):
    ids = context_ids(model, tok, lengths)
    out = []
    for pos in positions:
        sub = [np.full(V, x[pos]) for x in ids]
        out.append(prob(model, sub, np.arange(V)).sum())
    return out
