//! The instance base as posting lists (inverted-index retrieval), for a k-NN search whose cost does
//! not depend on how familiar the query is ([`crate::knn`] runs it).
//!
//! Rules:
//! - An *instance* is a leaf of the instance base's trie: a context stored once, with its class
//!   distribution at the leaf. Instances are numbered in depth-first order (children in label
//!   order), so the instances below any node are a range of numbers: its *span*.
//! - Each instance's values are kept in feature-weight order (W per instance: the labels on its path,
//!   then its tail).
//! - For each feature (in weight order) and value, the posting list holds the instances with that
//!   value there, ascending; a span's part of a list is found by binary search.
//! - Built from the instance base (its checksums verified, its structure not: a forged file may
//!   hold anything) when a k-NN query first needs it, never stored in the file. A trie this does not
//!   describe (a node reached twice, a leaf whose path and tail do not add up to W values, a value
//!   outside the symbols, more than 2^32 - 1 instances) has no postings: the search then walks the
//!   trie alone, which reports the damage it meets. Nor has a base with more than 4 symbols per
//!   instance beyond the first 2^16 symbols: the lists' starts would outweigh the lists.
//! - Built on the calling thread, never on the thread pool: a k-NN batch's workers must never wait
//!   for a build that needs them.
//! - Memory: 8W + 4 bytes per instance (its values, its place in W lists, its leaf), 8 per trie node
//!   (spans) and 4W(V + 1) for the lists' starts (V symbols): about 130 bytes per instance at W = 16.

use crate::knn::InstanceBaseView;
use crate::trie::ROOT;

/// The posting lists of one instance base (see the module doc).
pub struct Postings {
    width: usize,
    /// Per instance, its W values in weight order.
    values: Vec<u32>,
    /// Per instance, its leaf node.
    leaves: Vec<u32>,
    /// Per node, its span: the first instance below it and one past the last.
    spans: Vec<[u32; 2]>,
    /// Per feature, where each value's list starts in `lists` (n_symbols + 1 entries per feature).
    starts: Vec<u32>,
    /// The lists, feature after feature, value after value.
    lists: Vec<u32>,
    n_symbols: usize,
}

/// What the depth-first walk over the instance base finds.
struct Walk {
    /// Per instance, its values in weight order.
    values: Vec<u32>,
    /// Per instance, its leaf.
    leaves: Vec<u32>,
    /// Per node, its span: the leaves' set, the inner nodes' left empty.
    spans: Vec<[u32; 2]>,
}

impl Walk {
    /// The walk over `base`, whose nodes' children are `children`, depth-first, children in label
    /// order; None for a trie the module doc's rules exclude.
    fn of(base: &InstanceBaseView, children: &[[u32; 2]], width: usize) -> Option<Walk> {
        let nodes = children.len();
        let tails: Vec<std::ops::Range<u64>> =
            base.tail_offsets.ranges_from(0).take(nodes).collect();
        // Leaves: the nodes without children (so many instances, in a sound trie).
        let leaves = children.iter().filter(|[first, end]| first >= end).count();
        let mut walk = Walk {
            values: Vec::with_capacity(leaves * width),
            leaves: Vec::with_capacity(leaves),
            spans: vec![[0u32; 2]; nodes],
        };
        let mut path = vec![0u32; width];
        // A node met twice: a damaged trie (children shared), whose walk could grow without end.
        let mut met = vec![false; nodes];
        let mut stack = vec![(ROOT, 0usize)];
        while let Some((node, depth)) = stack.pop() {
            let met = met.get_mut(node as usize)?;
            if depth > width || std::mem::replace(met, true) {
                return None;
            }
            if depth > 0 {
                path[depth - 1] = base.trie.labels.try_get(node as usize)?;
            }
            let [first, end] = children[node as usize];
            if first < end {
                stack.extend((first..end).rev().map(|c| (c, depth + 1)));
                continue;
            }
            let tail = tails.get(node as usize)?;
            if tail.start > tail.end
                || tail.end > base.tail_values.len() as u64
                || depth + (tail.end - tail.start) as usize != width
            {
                return None;
            }
            let instance = u32::try_from(walk.leaves.len())
                .ok()
                .filter(|&i| i < u32::MAX)?;
            walk.values.extend_from_slice(&path[..depth]);
            let tail = tail.clone().map(|t| base.tail_values.get(t as usize));
            walk.values.extend(tail);
            walk.leaves.push(node);
            walk.spans[node as usize] = [instance, instance + 1];
        }
        Some(walk)
    }
}

impl Postings {
    /// The postings of `base` (width `width`, values below `n_symbols`), or None for a trie they do
    /// not describe.
    pub fn build(base: &InstanceBaseView, width: usize, n_symbols: u32) -> Option<Postings> {
        let trie = &base.trie;
        let nodes = trie.node_count();
        let n_symbols = n_symbols as usize;
        // Every node's children, decoded in one pass (a lookup per node would decode each anew).
        let ranges = trie.children.ranges_from(0).take(nodes).enumerate();
        let children: Vec<[u32; 2]> = ranges
            .map(|(node, stored)| {
                let ids = trie.child_ids(node as u32, stored).ok()?;
                Some([u32::try_from(ids.start).ok()?, u32::try_from(ids.end).ok()?])
            })
            .collect::<Option<_>>()?;
        let Walk {
            values,
            leaves,
            mut spans,
        } = Walk::of(base, &children, width)?;
        let instances = leaves.len();
        // The lists' starts would outweigh the lists (a symbol table far larger than the base).
        if n_symbols > 4 * instances + (1 << 16) {
            return None;
        }
        if values.iter().any(|&v| v as usize >= n_symbols) {
            return None;
        }
        // The values again, feature by feature (the lists are sorted one feature at a time).
        let mut columns = vec![0u32; values.len()];
        for (instance, row) in values.chunks_exact(width.max(1)).enumerate() {
            for (feature, &v) in row.iter().enumerate() {
                columns[feature * instances + instance] = v;
            }
        }
        // Inner nodes' spans from their children's (children come after their parent).
        for node in (0..nodes).rev() {
            let [first, end] = children[node];
            if first < end {
                spans[node] = [spans[first as usize][0], spans[end as usize - 1][1]];
            }
        }
        u32::try_from(width * instances).ok()?;
        // Per feature, a counting sort: the lists' starts, then the instances in order. On the
        // calling thread: a query on a worker of the thread pool may be waiting for these lists.
        let mut starts = vec![0u32; width * (n_symbols + 1)];
        let mut lists = vec![0u32; width * instances];
        let per_feature = starts
            .chunks_mut(n_symbols + 1)
            .zip(lists.chunks_mut(instances.max(1)))
            .zip(columns.chunks(instances.max(1)));
        for (feature, ((starts, list), column)) in per_feature.enumerate() {
            for &v in column {
                starts[v as usize + 1] += 1;
            }
            let first = (feature * instances) as u32;
            let mut at = first;
            for start in starts.iter_mut() {
                at += *start;
                *start = at;
            }
            let mut next: Vec<u32> = starts[..n_symbols].to_vec();
            for (instance, &v) in column.iter().enumerate() {
                list[(next[v as usize] - first) as usize] = instance as u32;
                next[v as usize] += 1;
            }
        }
        Some(Postings {
            width,
            values,
            leaves,
            spans,
            starts,
            lists,
            n_symbols,
        })
    }

    /// The span of `node`: the instances below it.
    #[inline]
    pub fn span(&self, node: u32) -> Option<std::ops::Range<u32>> {
        self.spans.get(node as usize).map(|&[a, b]| a..b)
    }

    /// The instances within `span` whose value at `feature` (weight order) is `value`, ascending.
    #[inline]
    pub fn list(&self, feature: usize, value: u32, span: &std::ops::Range<u32>) -> &[u32] {
        if value as usize >= self.n_symbols || feature >= self.width {
            return &[];
        }
        let at = feature * (self.n_symbols + 1) + value as usize;
        let list = &self.lists[self.starts[at] as usize..self.starts[at + 1] as usize];
        let from = list.partition_point(|&i| i < span.start);
        let to = from + list[from..].partition_point(|&i| i < span.end);
        &list[from..to]
    }

    /// The values of `instance` in weight order.
    #[inline]
    pub fn values(&self, instance: u32) -> &[u32] {
        let at = instance as usize * self.width;
        &self.values[at..at + self.width]
    }

    /// The leaf node of `instance`.
    #[inline]
    pub fn leaf(&self, instance: u32) -> u32 {
        self.leaves[instance as usize]
    }

    /// The width of the instances (values per instance).
    pub fn width(&self) -> usize {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::test_model;

    #[test]
    fn every_instance_is_listed_under_its_values_and_spans_nest() {
        let model = test_model(4, true);
        let base = model.instance_base().unwrap();
        let postings = Postings::build(&base, 4, model.params().n_symbols).unwrap();
        let all = postings.span(ROOT).unwrap();
        assert_eq!(all, 0..postings.leaves.len() as u32);
        let mut listed = 0;
        for feature in 0..4 {
            for value in 0..model.params().n_symbols {
                let list = postings.list(feature, value, &all);
                assert!(list.windows(2).all(|w| w[0] < w[1]));
                assert!(list.iter().all(|&i| postings.values(i)[feature] == value));
                listed += list.len();
            }
        }
        assert_eq!(listed, 4 * postings.leaves.len());
        // A node's span holds the instances whose paths pass through it: its children's spans.
        let trie = &base.trie;
        for node in 0..trie.node_count() as u32 {
            let span = postings.span(node).unwrap();
            let children = trie.children(node).unwrap();
            if children.is_empty() {
                assert_eq!(postings.leaf(span.start), node);
                assert_eq!(span.len(), 1);
            } else {
                let first = postings.span(children.start as u32).unwrap();
                let last = postings.span(children.end as u32 - 1).unwrap();
                assert_eq!((span.start, span.end), (first.start, last.end));
            }
        }
        // Part of a list: the instances of a span only.
        let part = 1..all.end - 1;
        let list = postings.list(0, postings.values(1)[0], &part);
        assert!(!list.is_empty() && list.iter().all(|i| part.contains(i)));
        assert!(postings.list(0, model.params().n_symbols, &all).is_empty());
    }
}
