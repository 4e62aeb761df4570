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
//! - Built from a verified instance base when a k-NN query first needs it, never stored in the file.
//!   A trie this does not describe (a leaf whose path and tail do not add up to W values, more than
//!   2^32 - 1 instances) has no postings: the search then walks the trie alone.

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

impl Postings {
    /// The postings of `base` (width `width`, values below `n_symbols`), or None for a trie they do
    /// not describe.
    pub fn build(base: &InstanceBaseView, width: usize, n_symbols: u32) -> Option<Postings> {
        let trie = &base.trie;
        let nodes = trie.node_count();
        let n_symbols = n_symbols as usize;
        let mut values = Vec::new();
        let mut leaves = Vec::new();
        let mut spans = vec![[0u32; 2]; nodes];
        let mut path = vec![0u32; width];
        // Depth-first, children in label order: a stack of (node, depth).
        let mut stack = vec![(ROOT, 0usize)];
        while let Some((node, depth)) = stack.pop() {
            if depth > width {
                return None;
            }
            if depth > 0 {
                path[depth - 1] = trie.labels.try_get(node as usize)?;
            }
            let children = trie.children(node).ok()?;
            if !children.is_empty() {
                stack.extend(children.rev().map(|c| (c as u32, depth + 1)));
                continue;
            }
            let tail = base.tail_offsets.range(node as usize);
            if depth + (tail.end - tail.start) as usize != width
                || tail.end > base.tail_values.len() as u64
            {
                return None;
            }
            let instance = u32::try_from(leaves.len()).ok().filter(|&i| i < u32::MAX)?;
            values.extend_from_slice(&path[..depth]);
            values.extend((tail.start..tail.end).map(|t| base.tail_values.get(t as usize)));
            leaves.push(node);
            spans[node as usize] = [instance, instance + 1];
        }
        if values.iter().any(|&v| v as usize >= n_symbols) {
            return None;
        }
        // Inner nodes' spans from their children's (children come after their parent).
        for node in (0..nodes).rev() {
            let children = trie.children(node as u32).ok()?;
            if let (Some(first), Some(last)) = (children.clone().next(), children.last()) {
                spans[node] = [spans[first][0], spans[last][1]];
            }
        }
        let instances = leaves.len();
        // Counting sort per feature: list starts, then the instances in ascending order.
        let mut starts = vec![0u32; width * (n_symbols + 1)];
        for row in values.chunks_exact(width.max(1)) {
            for (feature, &v) in row.iter().enumerate() {
                starts[feature * (n_symbols + 1) + v as usize + 1] += 1;
            }
        }
        for feature in 0..width {
            let base = (feature * instances) as u64;
            let counts = &mut starts[feature * (n_symbols + 1)..(feature + 1) * (n_symbols + 1)];
            let mut at = u32::try_from(base).ok()?;
            for count in counts.iter_mut() {
                at = at.checked_add(*count)?;
                *count = at;
            }
        }
        let mut next = starts.clone();
        let mut lists = vec![0u32; width * instances];
        for (instance, row) in values.chunks_exact(width.max(1)).enumerate() {
            for (feature, &v) in row.iter().enumerate() {
                let slot = &mut next[feature * (n_symbols + 1) + v as usize];
                lists[*slot as usize] = instance as u32;
                *slot += 1;
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

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * (self.values.len() + self.leaves.len() + self.starts.len() + self.lists.len())
            + 8 * self.spans.len()
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
