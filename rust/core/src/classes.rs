//! Global class statistics and the tie-breaking order between classes.

use crate::instances::Instances;

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
        let mut counts = vec![0u64; n_symbols];
        let mut first_seen = vec![usize::MAX; n_symbols];
        for i in 0..instances.len() {
            let c = instances.class(i) as usize;
            counts[c] += 1;
            if first_seen[c] == usize::MAX {
                first_seen[c] = i;
            }
        }
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
