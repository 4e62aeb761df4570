//! Global class statistics and the tie-breaking order between classes.
//!
//! [`ClassCounts`] are the raw material: how often each class occurs in a run of instances and
//! where it first occurs. The counts of consecutive runs (the shards of a cluster build, in corpus
//! order) reduce to those of the whole run ([`ClassCounts::concatenated`]: counts add, a first
//! occurrence is the earliest one, shifted by the instances before its run), so the statistics made
//! from them are the whole corpus's, exactly. [`ClassStats`] adds the tie-break ranks.

use crate::error::{Error, Result};
use crate::ids::Ids;
use crate::instances::Instances;

/// How often each class occurs in a run of instances, and where it first occurs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCounts {
    /// Instances per symbol id.
    pub counts: Vec<u64>,
    /// Per symbol id: the index of its first instance in the run, or [`ClassCounts::UNSEEN`].
    pub first_seen: Vec<u64>,
}

impl ClassCounts {
    /// The first occurrence of a class that does not occur.
    pub const UNSEEN: u64 = u64::MAX;

    /// The counts of `classes` (in instance order) over a symbol space of `n_symbols` ids, each
    /// class below it.
    fn of_classes(classes: impl Iterator<Item = u32>, n_symbols: usize) -> Self {
        let mut counts = vec![0u64; n_symbols];
        let mut first_seen = vec![Self::UNSEEN; n_symbols];
        for (i, c) in classes.enumerate() {
            let c = c as usize;
            counts[c] += 1;
            if first_seen[c] == Self::UNSEEN {
                first_seen[c] = i as u64;
            }
        }
        ClassCounts { counts, first_seen }
    }

    /// The counts of the classes of `instances`, whose symbols lie below `n_symbols`.
    pub fn of_instances<I: Instances + ?Sized>(instances: &I, n_symbols: usize) -> Self {
        Self::of_classes((0..instances.len()).map(|i| instances.class(i)), n_symbols)
    }

    /// The counts of token ids as classes (every token of a text is a target): an error for an id
    /// not below `n_symbols`.
    pub fn of_tokens(tokens: Ids, n_symbols: usize) -> Result<Self> {
        if let Some(t) = tokens.max().filter(|&t| t as usize >= n_symbols) {
            return Err(Error::InvalidInput(format!(
                "token id {t} lies outside a symbol space of {n_symbols} ids"
            )));
        }
        Ok(Self::of_classes(
            (0..tokens.len()).map(|i| tokens.get(i)),
            n_symbols,
        ))
    }

    /// The counts of runs of instances one after the other, in that order: an error for runs over
    /// different symbol spaces (or none), or for a first occurrence at or beyond its run's count.
    pub fn concatenated(parts: impl IntoIterator<Item = ClassCounts>) -> Result<Self> {
        let mut parts = parts.into_iter();
        let mismatch = |what: &str| Error::InvalidInput(format!("class counts to reduce: {what}"));
        let mut whole = parts.next().ok_or_else(|| mismatch("none given"))?;
        whole.check()?;
        let mut before = whole.total();
        for part in parts {
            if part.counts.len() != whole.counts.len() {
                return Err(mismatch("over different symbol spaces"));
            }
            part.check()?;
            for (c, (&count, &first)) in part.counts.iter().zip(&part.first_seen).enumerate() {
                whole.counts[c] += count;
                if whole.first_seen[c] == Self::UNSEEN && first != Self::UNSEEN {
                    whole.first_seen[c] = before + first;
                }
            }
            before += part.total();
        }
        Ok(whole)
    }

    /// Checks that the arrays have one entry per symbol and that a class is first seen, inside
    /// its run, exactly when it is counted.
    pub fn check(&self) -> Result<()> {
        let total = self.total();
        let consistent = self.counts.len() == self.first_seen.len()
            && self
                .counts
                .iter()
                .zip(&self.first_seen)
                .all(|(&count, &first)| {
                    (count == 0) == (first == Self::UNSEEN) && (count == 0 || first < total)
                });
        match consistent {
            true => Ok(()),
            false => Err(Error::InvalidInput(
                "class counts: the counts and first occurrences disagree".into(),
            )),
        }
    }

    /// The number of instances counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// How often each class occurs in the training instances, and the order used to break ties between
/// classes with equal votes: higher global frequency first, then earlier first occurrence.
pub struct ClassStats {
    /// Training frequency per symbol id.
    pub counts: Vec<u64>,
    /// Tie-break rank per symbol id: 0 is preferred over 1, and so on. Unseen symbols rank last.
    pub rank: Vec<u32>,
    /// The inverse of `rank`: the symbol id of every rank.
    pub by_rank: Vec<u32>,
}

impl ClassStats {
    /// Counts the classes of `instances` over a symbol space of `n_symbols` ids.
    pub fn new<I: Instances + ?Sized>(instances: &I, n_symbols: usize) -> Self {
        Self::from_counts(ClassCounts::of_instances(instances, n_symbols))
    }

    /// The statistics of classes counted (here, or in parts and reduced).
    pub fn from_counts(ClassCounts { counts, first_seen }: ClassCounts) -> Self {
        let n_symbols = counts.len();
        let mut by_preference: Vec<u32> = (0..n_symbols as u32).collect();
        by_preference.sort_by_key(|&c| {
            (
                std::cmp::Reverse(counts[c as usize]),
                first_seen[c as usize],
                c,
            )
        });
        let mut rank = vec![0u32; n_symbols];
        for (r, &c) in by_preference.iter().enumerate() {
            rank[c as usize] = r as u32;
        }
        ClassStats {
            counts,
            rank,
            by_rank: by_preference,
        }
    }

    /// Entropy of the class distribution in bits.
    pub fn entropy(&self) -> f64 {
        let total: u64 = self.counts.iter().sum();
        entropy_of_counts(self.counts.iter().copied(), total)
    }
}

/// Entropy in bits of a distribution given as counts summing to `total`.
pub(crate) fn entropy_of_counts(counts: impl Iterator<Item = u64>, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    counts
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::InstanceTable;

    #[test]
    fn rank_prefers_frequent_then_first_seen() {
        // classes in order: 3, 1, 1, 2, 3  -> counts 1:2, 3:2, 2:1; 3 seen first.
        let t = InstanceTable::new(vec![0, 3, 0, 1, 0, 1, 0, 2, 0, 3], 1).unwrap();
        let s = ClassStats::new(&t, 5);
        assert_eq!(s.counts, vec![0, 2, 1, 2, 0]);
        assert!(s.rank[3] < s.rank[1]);
        assert!(s.rank[1] < s.rank[2]);
        assert!(s.rank[2] < s.rank[0]);
        assert!((s.entropy() - 1.5219280948873621).abs() < 1e-12);
    }
}
