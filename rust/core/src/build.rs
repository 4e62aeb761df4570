//! Sort-based construction of the context trie, level by level, and IGTree pruning.
//!
//! The instance ids are kept in one array. Every node owns a contiguous range of it; expanding a node
//! sorts its range by the next feature (in weight order) and cuts it into runs of equal value, which
//! become its children. No per-instance insertion and no per-node allocation.

use crate::classes::ClassStats;
use crate::distribution::DistributionWriter;
use crate::instances::Instances;
use crate::offsets::PackedOffsets;
use crate::trie::{EncodedTrie, LabelVec};

/// One level of the unpruned trie under construction.
#[derive(Default)]
struct Level {
    /// Index of every node's parent in the previous level.
    parent: Vec<u32>,
    label: Vec<u32>,
    /// Range of every node in the instance order array (dropped once the level is expanded).
    range: Vec<(u32, u32)>,
    default: Vec<u32>,
    pure: Vec<bool>,
    /// Start of every node's distribution in `dist_bytes`, plus the end.
    dist_start: Vec<u32>,
    dist_bytes: Vec<u8>,
    /// Instance base only: the one instance below each single-instance node (else `u32::MAX`).
    single: Vec<u32>,
}

impl Level {
    fn len(&self) -> usize {
        self.label.len()
    }
}

/// Counts classes over ranges of instances with one dense scratch array, reused for every node.
struct DistributionCounter<'s> {
    counts: Vec<u32>,
    touched: Vec<u32>,
    stats: &'s ClassStats,
}

impl<'s> DistributionCounter<'s> {
    fn new(stats: &'s ClassStats) -> Self {
        DistributionCounter {
            counts: vec![0; stats.counts.len()],
            touched: Vec::new(),
            stats,
        }
    }

    /// Appends the distribution of `ids` to the level, default class first.
    fn push<I: Instances + ?Sized>(&mut self, instances: &I, ids: &[u32], level: &mut Level) {
        for &i in ids {
            let c = instances.class(i as usize);
            if self.counts[c as usize] == 0 {
                self.touched.push(c);
            }
            self.counts[c as usize] += 1;
        }
        let (counts, rank) = (&self.counts, &self.stats.rank);
        self.touched
            .sort_unstable_by_key(|&c| (std::cmp::Reverse(counts[c as usize]), rank[c as usize]));
        let mut writer = DistributionWriter::default();
        for &c in &self.touched {
            writer.push(
                &mut level.dist_bytes,
                rank[c as usize],
                self.counts[c as usize],
            );
            self.counts[c as usize] = 0;
        }
        level.default.push(self.touched[0]);
        level.pure.push(self.touched.len() == 1);
        level.dist_start.push(
            u32::try_from(level.dist_bytes.len())
                .expect("a trie level holds under 4 GiB of distributions"),
        );
        self.touched.clear();
    }
}

/// Sorts `ids` by the value of feature `f`; `keyed` is scratch space reused between calls.
fn sort_by_feature<I: Instances + ?Sized>(
    instances: &I,
    ids: &mut [u32],
    f: usize,
    keyed: &mut Vec<u64>,
) {
    if ids.len() <= 32 {
        ids.sort_unstable_by_key(|&i| instances.feature(i as usize, f));
        return;
    }
    keyed.clear();
    keyed.extend(
        ids.iter()
            .map(|&i| ((instances.feature(i as usize, f) as u64) << 32) | i as u64),
    );
    if keyed.len() > 1 << 16 {
        rayon::slice::ParallelSliceMut::par_sort_unstable(&mut keyed[..]);
    } else {
        keyed.sort_unstable();
    }
    for (slot, &k) in ids.iter_mut().zip(keyed.iter()) {
        *slot = k as u32;
    }
}

/// Builds the IGTree (TiMBL `-a1`): the trie in feature order `order`, nodes whose instances all share
/// one class not expanded, then pruned bottom-up (a leaf whose default equals its parent's is removed).
pub fn build_igtree<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
) -> EncodedTrie {
    let levels = build_levels(instances, order, stats, Expand::Impure);
    let keep = prune(&levels);
    encode(levels, Some(&keep), stats)
}

/// The unpruned instance base of TRIBL2 and IB1, with the tails of its single-instance leaves.
pub struct InstanceBase {
    /// Every node with two or more instances is expanded, to depth W.
    pub trie: EncodedTrie,
    /// Per node: how many feature values its tail holds (W - depth for single-instance nodes).
    pub tail_offsets: PackedOffsets,
    /// The tails: the remaining feature values (in weight order) of each single-instance node.
    pub tail_values: LabelVec,
}

/// Builds the instance base (TiMBL's IB1/TRIBL2 trie): the full trie in feature order `order`, except
/// that a node holding a single instance stores the rest of that instance as a tail instead of a chain.
pub fn build_instance_base<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
) -> InstanceBase {
    let n_symbols = stats.counts.len() as u32;
    let levels = build_levels(instances, order, stats, Expand::Shared);
    let mut tail_values = LabelVec::for_symbols(n_symbols);
    let mut tail_offsets = PackedOffsets::default();
    for (depth, level) in levels.iter().enumerate() {
        for &i in &level.single {
            if i == u32::MAX {
                tail_offsets.push(0);
                continue;
            }
            for &f in &order[depth..] {
                tail_values.push(instances.feature(i as usize, f));
            }
            tail_offsets.push((order.len() - depth) as u64);
        }
    }
    InstanceBase {
        trie: encode(levels, None, stats),
        tail_offsets: tail_offsets.finish(),
        tail_values,
    }
}

/// Which nodes the builder expands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expand {
    /// IGTree: nodes whose instances have more than one class.
    Impure,
    /// Instance base: nodes holding more than one instance.
    Shared,
}

/// Builds the unpruned levels: level 0 is the root, level d holds the nodes matched on d features.
fn build_levels<I: Instances + ?Sized>(
    instances: &I,
    order: &[usize],
    stats: &ClassStats,
    expand: Expand,
) -> Vec<Level> {
    let n = instances.len();
    let mut ids: Vec<u32> = (0..n as u32).collect();
    let mut counter = DistributionCounter::new(stats);
    let mut keyed: Vec<u64> = Vec::new();
    let mut root = Level {
        parent: vec![0],
        label: vec![0],
        range: vec![(0, n as u32)],
        dist_start: vec![0],
        ..Level::default()
    };
    counter.push(instances, &ids, &mut root);
    let mut levels = vec![root];
    for &feature in order {
        let parent_level = levels.last_mut().expect("the root level exists");
        let ranges = std::mem::take(&mut parent_level.range);
        let mut next = Level {
            dist_start: vec![0],
            ..Level::default()
        };
        if expand == Expand::Shared {
            parent_level.single = ranges
                .iter()
                .map(|&(start, end)| {
                    if end - start == 1 {
                        ids[start as usize]
                    } else {
                        u32::MAX
                    }
                })
                .collect();
        }
        for (j, &(start, end)) in ranges.iter().enumerate() {
            let leaf = match expand {
                Expand::Impure => parent_level.pure[j],
                Expand::Shared => end - start == 1,
            };
            if leaf {
                continue;
            }
            let slice = &mut ids[start as usize..end as usize];
            sort_by_feature(instances, slice, feature, &mut keyed);
            let mut run = 0;
            while run < slice.len() {
                let value = instances.feature(slice[run] as usize, feature);
                let mut run_end = run + 1;
                while run_end < slice.len()
                    && instances.feature(slice[run_end] as usize, feature) == value
                {
                    run_end += 1;
                }
                next.parent.push(j as u32);
                next.label.push(value);
                next.range
                    .push((start + run as u32, start + run_end as u32));
                counter.push(instances, &slice[run..run_end], &mut next);
                run = run_end;
            }
        }
        if next.len() == 0 {
            break;
        }
        levels.push(next);
    }
    // Nodes at depth W are never expanded and have no tail.
    let last = levels.last_mut().expect("the root level exists");
    if last.single.is_empty() {
        last.single = vec![u32::MAX; last.len()];
    }
    levels
}

/// IGTree pruning: marks, bottom-up, every leaf whose default class equals its parent's for removal.
/// `keep[d][j]` tells whether node j of level d survives.
fn prune(levels: &[Level]) -> Vec<Vec<bool>> {
    let mut keep: Vec<Vec<bool>> = levels.iter().map(|l| vec![false; l.len()]).collect();
    keep[0][0] = true;
    let mut has_kept_child: Vec<bool> = Vec::new();
    for d in (1..levels.len()).rev() {
        let (level, parent) = (&levels[d], &levels[d - 1]);
        let mut parent_has_kept_child = vec![false; parent.len()];
        for (j, kept) in keep[d].iter_mut().enumerate() {
            let p = level.parent[j] as usize;
            let internal = has_kept_child.get(j).copied().unwrap_or(false);
            *kept = internal || level.default[j] != parent.default[p];
            parent_has_kept_child[p] |= *kept;
        }
        has_kept_child = parent_has_kept_child;
    }
    keep
}

/// Encodes the kept nodes (all when `keep` is None) breadth-first.
fn encode(mut levels: Vec<Level>, keep: Option<&[Vec<bool>]>, stats: &ClassStats) -> EncodedTrie {
    let kept = |d: usize, j: usize| keep.is_none_or(|k| k[d][j]);
    let mut labels = LabelVec::for_symbols(stats.counts.len() as u32);
    let mut children = PackedOffsets::default();
    let mut dist_offsets = PackedOffsets::default();
    let mut dist_bytes: Vec<u8> = Vec::new();
    // Children of the kept nodes of level d are the kept nodes of level d + 1, in parent order.
    for d in 0..levels.len() {
        let mut kept_children = vec![0u64; levels[d].len()];
        if let Some(below) = levels.get(d + 1) {
            for j in 0..below.len() {
                if kept(d + 1, j) {
                    kept_children[below.parent[j] as usize] += 1;
                }
            }
        }
        let level = std::mem::take(&mut levels[d]);
        for (j, &degree) in kept_children.iter().enumerate() {
            if !kept(d, j) {
                continue;
            }
            labels.push(level.label[j]);
            children.push(degree);
            let dist = level.dist_start[j] as usize..level.dist_start[j + 1] as usize;
            dist_offsets.push(dist.len() as u64);
            dist_bytes.extend_from_slice(&level.dist_bytes[dist]);
        }
    }
    EncodedTrie {
        labels,
        children: children.finish(),
        dist_offsets: dist_offsets.finish(),
        dist_bytes,
        classes: stats.by_rank.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::InstanceTable;
    use crate::trie::{TrieView, ROOT};

    fn dist(v: &TrieView, n: u32) -> Vec<(u32, u32)> {
        v.distribution(n).collect()
    }

    fn build(rows: Vec<u32>, width: usize, n_symbols: usize, order: &[usize]) -> EncodedTrie {
        let t = InstanceTable::new(rows, width).unwrap();
        let stats = ClassStats::new(&t, n_symbols);
        build_igtree(&t, order, &stats)
    }

    #[test]
    fn pure_root_is_a_single_node() {
        let trie = build(vec![1, 2, 7, 3, 4, 7], 2, 8, &[1, 0]);
        assert_eq!(trie.view().node_count(), 1);
        assert_eq!(dist(&trie.view(), ROOT), vec![(7, 2)]);
        trie.view().validate(8).unwrap();
    }

    #[test]
    fn leaves_agreeing_with_parent_are_pruned() {
        // Feature order [0]. Value 1 -> classes {5,5,6}: default 5 = root default, but value 1 has a
        // mixed distribution. Value 2 -> class 6 (differs from root default 5): kept.
        // Value 3 -> class 5 (same as root default): pruned.
        let rows = vec![1, 5, 1, 5, 1, 6, 2, 6, 3, 5];
        let trie = build(rows, 1, 8, &[0]);
        let v = trie.view();
        v.validate(8).unwrap();
        assert_eq!(v.default_class(ROOT), 5);
        assert_eq!(dist(&v, ROOT), vec![(5, 3), (6, 2)]);
        assert_eq!(v.child(ROOT, 3), None, "pruned: same default as the root");
        assert_eq!(v.child(ROOT, 1), None, "pruned: same default as the root");
        let two = v.child(ROOT, 2).expect("kept: default 6 differs");
        assert_eq!(dist(&v, two), vec![(6, 1)]);
        assert_eq!(v.node_count(), 2);
    }

    #[test]
    fn internal_node_with_same_default_is_kept_when_a_child_differs() {
        // Order [1, 0]. Feature 1 value 1 covers classes 5,5,6 (default 5, like the root); under it,
        // feature 0 value 9 -> class 6 differs, so both nodes stay.
        let rows = vec![8, 1, 5, 8, 1, 5, 9, 1, 6, 8, 2, 5];
        let trie = build(rows, 2, 10, &[1, 0]);
        let v = trie.view();
        v.validate(10).unwrap();
        let one = v.child(ROOT, 1).expect("internal node kept");
        assert_eq!(v.default_class(one), 5);
        let leaf = v.child(one, 9).expect("differing leaf kept");
        assert_eq!(v.default_class(leaf), 6);
        assert_eq!(v.child(one, 8), None);
        assert_eq!(v.child(ROOT, 2), None);
    }

    #[test]
    fn default_ties_break_on_global_frequency_then_first_occurrence() {
        // Global counts: 4 x2 (first seen at 0), 3 x2 (first seen at 2), 7 x1.
        // Node of value 1 holds {3:1, 7:1}: tie -> 3 (more frequent globally).
        // Node of value 2 holds {4:1, 3:1}: tie on count and global frequency -> 4 (seen first).
        let rows = vec![2, 4, 0, 4, 1, 3, 1, 7, 2, 3];
        let trie = build(rows, 1, 8, &[0]);
        let v = trie.view();
        assert_eq!(v.default_class(ROOT), 4);
        let one = v.child(ROOT, 1).unwrap();
        assert_eq!(dist(&v, one), vec![(3, 1), (7, 1)]);
        // Value 2's default (4) equals the root's, so it is pruned.
        assert_eq!(v.child(ROOT, 2), None);
    }

    #[test]
    fn depth_is_bounded_by_width() {
        let rows = vec![1, 1, 5, 1, 1, 6, 1, 1, 5];
        let trie = build(rows, 2, 8, &[0, 1]);
        let v = trie.view();
        v.validate(8).unwrap();
        // The two instances with identical features but classes 5,5,6 end in one leaf at depth 2 with
        // default 5 = root default: everything is pruned.
        assert_eq!(v.node_count(), 1);
    }
}
