//! True probabilities: interpolated Witten-Bell back-off along the matched IGTree path.
//!
//! TiMBL leaves every class unseen in the matched node at probability zero, so OLIFANT reports no
//! perplexity. memlm scores with the node distributions on the descent path, from the root (all
//! training instances) to the deepest matched node, each level interpolated with the one above as in
//! Witten-Bell smoothing (Witten & Bell 1991; Chen & Goodman 1998, §2.5):
//!
//! ```text
//! P_d(w) = (c_d(w) + T_d * P_{d-1}(w)) / (N_d + T_d)
//! ```
//!
//! with `c_d(w)` the count of `w` at the level-d node, `N_d` its total, `T_d` its number of distinct
//! classes, and a uniform floor `P_{-1}(w) = 1 / V` over the V non-padding symbols. Every symbol gets
//! a positive probability and the probabilities sum to 1. The method has no parameter to tune.

use crate::trie::{Corrupt, TrieView};

const EMPTY: Corrupt = Corrupt("a node on the path has an empty class distribution");

/// The score of one target after one context.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// log10 of the target's probability (as KenLM reports it).
    pub log10: f64,
    /// Length of the context matched (Kneser-Ney: the longest stored context; Witten-Bell: the
    /// IGTree depth).
    pub depth: u32,
    /// Whether the target is out of vocabulary: never a training class (unknown ids included).
    pub oov: bool,
}

/// Scores of a batch, one entry per target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    pub log10: Vec<f64>,
    pub depths: Vec<u32>,
    pub oov: Vec<bool>,
}

impl FromIterator<Score> for Scores {
    fn from_iter<I: IntoIterator<Item = Score>>(scores: I) -> Scores {
        let scores = scores.into_iter();
        let n = scores.size_hint().0;
        let mut all = Scores {
            log10: Vec::with_capacity(n),
            depths: Vec::with_capacity(n),
            oov: Vec::with_capacity(n),
        };
        for score in scores {
            all.log10.push(score.log10);
            all.depths.push(score.depth);
            all.oov.push(score.oov);
        }
        all
    }
}

/// Count, total and distinct classes of one path node, for one target.
#[derive(Clone, Copy, Debug)]
struct Level {
    count: f64,
    total: f64,
    distinct: f64,
}

/// Probability of `target` after the path `nodes` (root first) over `vocabulary` symbols.
pub fn probability(
    trie: &TrieView,
    nodes: &[u32],
    target: u32,
    vocabulary: usize,
) -> Result<f64, Corrupt> {
    let mut p = 1.0 / vocabulary as f64;
    for &n in nodes {
        let level = level(trie, n, target)?;
        p = (level.count + level.distinct * p) / (level.total + level.distinct);
    }
    Ok(p)
}

fn level(trie: &TrieView, node: u32, target: u32) -> Result<Level, Corrupt> {
    let mut level = Level {
        count: 0.0,
        total: 0.0,
        distinct: 0.0,
    };
    let mut entries = trie.entries(node)?;
    while let Some((class, count)) = entries.try_next()? {
        if class == target {
            level.count = count as f64;
        }
        level.total += count as f64;
        level.distinct += 1.0;
    }
    if level.distinct == 0.0 {
        return Err(EMPTY);
    }
    Ok(level)
}

/// Every probability after the path `nodes`: one per symbol id (`n_symbols` of them, at least
/// 2), the padding symbol `pad` at zero.
pub fn probabilities(
    trie: &TrieView,
    nodes: &[u32],
    n_symbols: usize,
    pad: u32,
) -> Result<Vec<f64>, Corrupt> {
    let vocabulary = n_symbols.saturating_sub(1).max(1);
    let mut p = vec![1.0 / vocabulary as f64; n_symbols];
    if let Some(slot) = p.get_mut(pad as usize) {
        *slot = 0.0;
    }
    let mut counts: Vec<(u32, f64)> = Vec::new();
    for &n in nodes {
        counts.clear();
        let mut entries = trie.entries(n)?;
        while let Some((c, k)) = entries.try_next()? {
            counts.push((c, k as f64));
        }
        if counts.is_empty() {
            return Err(EMPTY);
        }
        let total: f64 = counts.iter().map(|c| c.1).sum();
        let distinct = counts.len() as f64;
        let scale = distinct / (total + distinct);
        p.iter_mut().for_each(|x| *x *= scale);
        for &(c, k) in &counts {
            let slot = p
                .get_mut(c as usize)
                .ok_or(Corrupt("a class lies outside the symbols"))?;
            *slot += k / (total + distinct);
        }
    }
    Ok(p)
}
