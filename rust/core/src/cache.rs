//! The document cache (adaptive memory): while a document is scored (or generated,
//! [`crate::generation`]), the text so far is counted in a small overlay, and its relative
//! frequencies are interpolated with the model.
//!
//! Rules:
//! - The overlay counts, for context lengths k = 0..[`CACHE_ORDERS`] - 1, how often each context
//!   (the k nearest tokens, with the block rule of [`crate::kneser_ney`]: a context ends at a block
//!   start) and each (context, token) occurred in the document so far. It spans the document's blocks.
//! - With `e_k` = 1 when the target's context of length k occurred before (else 0) and `λ_k` the
//!   weights: `p(w) = (1 - Σ_k λ_k e_k) p_model(w) + Σ_k λ_k e_k c_k(h, w) / c_k(h)`, which sums to 1
//!   whenever `p_model` does and `Σ_k λ_k ≤ 1`.
//! - The weights are fitted at training time on held-out *training* blocks ([`fit_weights`]), never
//!   on the text being scored.
//!
//! Contexts and pairs are counted under 64-bit hashes of their tokens (a collision, about one in 2^64
//! per pair of keys, would merge two counts).

use crate::hashed_counts::HashedCounts;

/// Context lengths the cache counts: 0 (the document's unigram) to 3.
pub const CACHE_ORDERS: usize = 4;

/// The interpolation weights of the cache per context length.
pub type CacheWeights = [f64; CACHE_ORDERS];

/// How many tokens ahead [`DocumentCache::observe_all`] fetches the counts a token will read: enough
/// to cover a memory read's latency with the work of the tokens in between.
const PREFETCH_AHEAD: usize = 8;

/// Keys reserved up front per hash table at most (32 MiB each: 16 bytes a slot, two slots a key).
const RESERVED_KEYS_MAX: usize = 1 << 20;

/// splitmix64's finaliser.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The context keys of one window (W ids, farthest first) and how many context lengths it has.
#[derive(Clone, Copy)]
pub struct Keys {
    keys: [u64; CACHE_ORDERS],
    orders: usize,
    /// The nearest token of the window (the context of length 1).
    nearest: u32,
}

impl Keys {
    /// The keys of the contexts of lengths 0.. of `window`, stopping after a block start (`pad`).
    #[inline]
    pub fn of(window: &[u32], pad: u32) -> Keys {
        let mut keys = [0u64; CACHE_ORDERS];
        let mut key = mix(0x5bd1_e995);
        keys[0] = key;
        let mut orders = 1;
        for (k, &t) in window.iter().rev().enumerate().take(CACHE_ORDERS - 1) {
            key = mix(key ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            keys[k + 1] = key;
            orders += 1;
            if t == pad {
                break;
            }
        }
        let nearest = window.last().copied().unwrap_or(pad);
        Keys {
            keys,
            orders,
            nearest,
        }
    }
}

#[inline]
fn pair(context: u64, token: u32) -> u64 {
    mix(context ^ (token as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// The overlay of one document. The counts of the two shortest contexts are dense arrays by token id
/// (the document's length, how often each token occurred, how often each token preceded one), so that
/// a token costs five hash look-ups, not eight; ids beyond the arrays fall back to the hashes.
#[derive(Default)]
#[cfg_attr(test, derive(Clone))]
pub struct DocumentCache {
    contexts: HashedCounts,
    pairs: HashedCounts,
    tokens: u32,
    unigram: Vec<u32>,
    previous: Vec<u32>,
}

/// Whether `weights` can interpolate the cache with a distribution: each finite and at least 0,
/// summing to at most 1.
pub fn valid_weights(weights: &CacheWeights) -> bool {
    weights.iter().all(|w| w.is_finite() && *w >= 0.0) && weights.iter().sum::<f64>() <= 1.0
}

/// What the cache says about one target: per context length, whether the context occurred and the
/// share of the target after it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheView {
    pub seen: [bool; CACHE_ORDERS],
    pub share: [f64; CACHE_ORDERS],
}

impl CacheView {
    /// Records what the context of length `k` says: seen when its `total` is positive, the target's
    /// share `count / total`.
    #[inline]
    fn set(&mut self, k: usize, total: u32, count: u32) {
        if total > 0 {
            self.seen[k] = true;
            self.share[k] = count as f64 / total as f64;
        }
    }

    /// The target's probability: `base` (the model's) interpolated with the cache by `weights`.
    #[inline]
    pub fn mix(&self, base: f64, weights: &CacheWeights) -> f64 {
        self.kept(weights) * base + self.cached(weights)
    }

    /// The model's share of the mixture, `1 - Σ_k λ_k e_k`: the same for every target after one
    /// context.
    #[inline]
    pub fn kept(&self, weights: &CacheWeights) -> f64 {
        let seen = self.seen.iter().zip(weights).filter(|(&seen, _)| seen);
        1.0 - seen.map(|(_, &weight)| weight).sum::<f64>()
    }

    /// The cache's part of the mixture, `Σ_k λ_k e_k c_k(h, w) / c_k(h)`.
    #[inline]
    pub fn cached(&self, weights: &CacheWeights) -> f64 {
        let parts = self.seen.iter().zip(&self.share).zip(weights);
        parts
            .filter(|((&seen, _), _)| seen)
            .map(|((_, &share), &weight)| weight * share)
            .sum()
    }
}

/// Where one count of the overlay is kept.
#[derive(Clone, Copy)]
enum Slot {
    /// The document's length (the context of length 0).
    Tokens,
    /// Dense counts by id: how often each token occurred, and how often each preceded one.
    Unigram(u32),
    Previous(u32),
    /// Hashed counts of a context, and of a (context, token) pair.
    Context(u64),
    Pair(u64),
}

impl DocumentCache {
    /// An overlay for a document of about `tokens` tokens over `n_ids` ids. The hash tables are
    /// sized for the document up front (a token adds at most two contexts and three pairs), up to
    /// 2^20 keys each, so that they rarely rehash; never for the vocabulary (mostly
    /// empty, they would crowd the model out of the processor's caches).
    pub fn new(n_ids: usize, tokens: usize) -> DocumentCache {
        let table = |per_token: usize| {
            let keys = tokens.saturating_mul(per_token).min(RESERVED_KEYS_MAX);
            HashedCounts::with_capacity(keys)
        };
        DocumentCache {
            contexts: table(CACHE_ORDERS - 2),
            pairs: table(CACHE_ORDERS - 1),
            unigram: vec![0; n_ids],
            previous: vec![0; n_ids],
            ..Default::default()
        }
    }

    /// Where the count of the context of length `k` of `keys` is kept, and that of `target` after
    /// it (the dense arrays for the two shortest contexts, as far as they reach).
    #[inline]
    fn slots(&self, keys: &Keys, k: usize, target: u32) -> (Slot, Slot) {
        let dense = |ids: &Vec<u32>, id: u32| (id as usize) < ids.len();
        let total = match k {
            0 => Slot::Tokens,
            1 if dense(&self.previous, keys.nearest) => Slot::Previous(keys.nearest),
            _ => Slot::Context(keys.keys[k]),
        };
        let count = match k {
            0 if dense(&self.unigram, target) => Slot::Unigram(target),
            _ => Slot::Pair(pair(keys.keys[k], target)),
        };
        (total, count)
    }

    /// A count (0 when never counted).
    #[inline]
    fn get(&self, slot: Slot) -> u32 {
        match slot {
            Slot::Tokens => self.tokens,
            Slot::Unigram(id) => self.unigram[id as usize],
            Slot::Previous(id) => self.previous[id as usize],
            Slot::Context(key) => self.contexts.get(key),
            Slot::Pair(key) => self.pairs.get(key),
        }
    }

    /// A count before adding one to it.
    #[inline]
    fn increment(&mut self, slot: Slot) -> u32 {
        let count = match slot {
            Slot::Tokens => &mut self.tokens,
            Slot::Unigram(id) => &mut self.unigram[id as usize],
            Slot::Previous(id) => &mut self.previous[id as usize],
            Slot::Context(key) => return self.contexts.increment(key),
            Slot::Pair(key) => return self.pairs.increment(key),
        };
        let before = *count;
        *count = before.saturating_add(1);
        before
    }

    /// Asks the processor to fetch the hashed counts that [`DocumentCache::observe`] of `keys` and
    /// `target` will read (a hint for a token some way ahead: no effect on the counts).
    #[inline]
    pub fn prefetch(&self, keys: &Keys, target: u32) {
        for k in 0..keys.orders {
            let (total, count) = self.slots(keys, k, target);
            for slot in [total, count] {
                match slot {
                    Slot::Context(key) => self.contexts.prefetch(key),
                    Slot::Pair(key) => self.pairs.prefetch(key),
                    _ => {}
                }
            }
        }
    }

    /// How often each context of `keys` occurred (shortest first; 0: never).
    fn totals(&self, keys: &Keys) -> [u32; CACHE_ORDERS] {
        let mut totals = [0; CACHE_ORDERS];
        for (k, total) in totals.iter_mut().enumerate().take(keys.orders) {
            *total = self.get(self.slots(keys, k, 0).0);
        }
        totals
    }

    /// What the document says about `target` after the contexts of `keys`, whose `totals` are known.
    fn view(&self, keys: &Keys, totals: &[u32; CACHE_ORDERS], target: u32) -> CacheView {
        let mut view = CacheView::default();
        for (k, &total) in totals.iter().enumerate().take(keys.orders) {
            view.set(k, total, self.get(self.slots(keys, k, target).1));
        }
        view
    }

    /// What the document so far says about `target` after the contexts of `keys`, without counting it.
    #[cfg(test)]
    fn peek(&self, keys: &Keys, target: u32) -> CacheView {
        self.view(keys, &self.totals(keys), target)
    }

    /// The mixture after the contexts of `keys`, in place of `p`, the model's probabilities (one
    /// per id): every id's scaled by the model's share, the cache's part added for the ids the
    /// document holds (as far as the dense counts reach). The contexts' totals are read once.
    pub fn mix_into(&self, keys: &Keys, weights: &CacheWeights, p: &mut [f64]) {
        let totals = self.totals(keys);
        let mut seen = CacheView::default();
        for (k, &total) in totals.iter().enumerate() {
            seen.set(k, total, 0);
        }
        let kept = seen.kept(weights);
        p.iter_mut().for_each(|x| *x *= kept);
        let held = self.unigram.iter().zip(p.iter_mut()).enumerate();
        for (id, (_, x)) in held.filter(|(_, (&count, _))| count > 0) {
            *x += self.view(keys, &totals, id as u32).cached(weights);
        }
    }

    /// [`DocumentCache::observe`] of each window of `contexts` (`width` ids each, farthest first)
    /// and its target in turn, the document's next tokens; the counts of the token eight tokens
    /// on are fetched while those of one are read.
    pub fn observe_all<'a>(
        &'a mut self,
        contexts: &'a [u32],
        width: usize,
        targets: &'a [u32],
        pad: u32,
    ) -> impl Iterator<Item = CacheView> + 'a {
        let windows = contexts.chunks_exact(width.max(1)).zip(targets);
        let mut keyed = windows.map(move |(context, &target)| (Keys::of(context, pad), target));
        // The keys of the next PREFETCH_AHEAD tokens, each computed once.
        let mut ahead: std::collections::VecDeque<(Keys, u32)> =
            keyed.by_ref().take(PREFETCH_AHEAD).collect();
        std::iter::from_fn(move || {
            let (keys, target) = ahead.pop_front()?;
            if let Some((next, next_target)) = keyed.next() {
                self.prefetch(&next, next_target);
                ahead.push_back((next, next_target));
            }
            Some(self.observe(&keys, target))
        })
    }

    /// What the document so far says about `target` after the contexts of `keys`; then counts it.
    #[inline]
    pub fn observe(&mut self, keys: &Keys, target: u32) -> CacheView {
        let mut view = CacheView::default();
        for k in 0..keys.orders {
            let (total, count) = self.slots(keys, k, target);
            let (total, count) = (self.increment(total), self.increment(count));
            view.set(k, total, count);
        }
        view
    }
}

/// The weights that maximise the likelihood of held-out text: `base[i]` is the model's probability
/// of its i-th token, `views[i]` what the cache said about it then. Coordinate ascent (three sweeps
/// of a golden-section search per weight, the others fixed; the log-likelihood is concave), weights
/// kept so that `Σ λ ≤ 0.95`.
pub fn fit_weights(base: &[f64], views: &[CacheView]) -> CacheWeights {
    let likelihood = |w: &CacheWeights| -> f64 {
        base.iter()
            .zip(views)
            .map(|(&p, v)| v.mix(p, w).max(f64::MIN_POSITIVE).ln())
            .sum()
    };
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut weights = [0.0; CACHE_ORDERS];
    for _ in 0..3 {
        for k in 0..CACHE_ORDERS {
            let room = (0.95 - weights.iter().sum::<f64>() + weights[k]).max(0.0);
            let at = |x: f64| {
                let mut w = weights;
                w[k] = x;
                likelihood(&w)
            };
            // Golden-section search on [0, room], one new evaluation per step.
            let (mut lo, mut hi) = (0.0, room);
            let (mut a, mut b) = (hi - ratio * (hi - lo), lo + ratio * (hi - lo));
            let (mut fa, mut fb) = (at(a), at(b));
            for _ in 0..30 {
                if fa < fb {
                    lo = a;
                    (a, fa) = (b, fb);
                    b = lo + ratio * (hi - lo);
                    fb = at(b);
                } else {
                    hi = b;
                    (b, fb) = (a, fa);
                    a = hi - ratio * (hi - lo);
                    fa = at(a);
                }
            }
            weights[k] = (lo + hi) / 2.0;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_passage_gets_cheaper_and_weights_fit_it() {
        let pad = 100;
        let passage: Vec<u32> = (0..40).map(|i| (i * 7 % 23) as u32).collect();
        let mut cache = DocumentCache::default();
        let weights = [0.05, 0.1, 0.05, 0.05];
        let mut first = Vec::new();
        let mut second = Vec::new();
        for pass in 0..2 {
            for i in 0..passage.len() {
                let window: Vec<u32> = (0..4)
                    .map(|k| if i + k >= 4 { passage[i + k - 4] } else { pad })
                    .collect();
                let keys = Keys::of(&window, pad);
                let view = cache.observe(&keys, passage[i]);
                let p = view.mix(0.01, &weights);
                if pass == 0 { &mut first } else { &mut second }.push((p, view));
            }
        }
        // The second pass: its contexts were seen (as far as they go), and the target followed them.
        for ((p1, _), (p2, v2)) in first.iter().zip(&second) {
            assert!(p2 > p1 && v2.seen[0] && v2.seen[1], "{p1} {p2}");
        }
        let base = vec![0.01; second.len()];
        let views: Vec<CacheView> = second.iter().map(|x| x.1).collect();
        let fitted = fit_weights(&base, &views);
        assert!(fitted.iter().sum::<f64>() > 0.9, "{fitted:?}");
        // Weights fitted where the cache never helps (no token repeats) stay near 0.
        let mut fresh = DocumentCache::default();
        let useless: Vec<CacheView> = (0..50u32)
            .map(|t| {
                let keys = Keys::of(&[pad, pad, t.wrapping_sub(1), t], pad);
                fresh.observe(&keys, t + 1)
            })
            .collect();
        let none = fit_weights(&vec![0.01; useless.len()], &useless);
        assert!(none.iter().sum::<f64>() < 0.2, "{none:?}");
    }

    #[test]
    fn the_mixture_sums_to_one() {
        let pad = 9;
        // Dense counts for ids 0..5 only: the others take the hashes.
        let mut cache = DocumentCache::new(5, 9);
        let text = [1u32, 2, 3, 1, 2, 4, 1, 2, 3];
        for (i, &t) in text.iter().enumerate() {
            let window: Vec<u32> = (0..3)
                .map(|k| if i + k >= 3 { text[i + k - 3] } else { pad })
                .collect();
            cache.observe(&Keys::of(&window, pad), t);
        }
        let window = [3u32, 1, 2];
        let keys = Keys::of(&window, pad);
        let weights = [0.1, 0.2, 0.1, 0.1];
        // A uniform model over ids 0..9 (padding excluded); every candidate seen by `observe` on a
        // copy of the cache.
        let sum: f64 = (0..9)
            .map(|w| cache.clone().observe(&keys, w).mix(1.0 / 9.0, &weights))
            .sum();
        assert!((sum - 1.0).abs() < 1e-12, "{sum}");
        // Peeking says what observing would, and the whole mixture is each id's.
        let mut mixed = vec![1.0 / 9.0; 9];
        cache.mix_into(&keys, &weights, &mut mixed);
        for w in 0..9 {
            let (peeked, observed) = (cache.peek(&keys, w), cache.clone().observe(&keys, w));
            assert_eq!((peeked.seen, peeked.share), (observed.seen, observed.share));
            assert!((mixed[w as usize] - peeked.mix(1.0 / 9.0, &weights)).abs() < 1e-15);
        }
    }
}
