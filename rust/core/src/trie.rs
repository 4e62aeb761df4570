//! The context trie as flat arrays, and read access to it.
//!
//! Nodes are numbered breadth-first with the root as node 0, so the children of a node are a contiguous
//! range `child_start[n] .. child_start[n + 1]`, their arc labels sorted ascending. Every node carries
//! the class distribution of the training instances below it as a run of (class, count) pairs, sorted
//! by count (descending) and then by the global tie-break rank: the first entry is the node's default.

use std::ops::Range;

/// Owned trie arrays, as produced by the builder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrieArrays {
    /// First child of every node, plus one final entry: the node count.
    pub child_start: Vec<u32>,
    /// Arc label (feature value) leading into every node; the root's is 0 and unused.
    pub label: Vec<u32>,
    /// First distribution entry of every node, plus one final entry: the entry count.
    pub dist_start: Vec<u32>,
    /// Class of every distribution entry.
    pub dist_class: Vec<u32>,
    /// Count of every distribution entry.
    pub dist_count: Vec<u32>,
}

impl TrieArrays {
    /// Borrowed view of these arrays.
    pub fn view(&self) -> TrieView<'_> {
        TrieView {
            child_start: &self.child_start,
            label: &self.label,
            dist_start: &self.dist_start,
            dist_class: &self.dist_class,
            dist_count: &self.dist_count,
        }
    }
}

/// Read access to trie arrays, owned or memory-mapped. Construct it only from validated arrays.
#[derive(Clone, Copy, Debug)]
pub struct TrieView<'a> {
    pub child_start: &'a [u32],
    pub label: &'a [u32],
    pub dist_start: &'a [u32],
    pub dist_class: &'a [u32],
    pub dist_count: &'a [u32],
}

/// The root node's id.
pub const ROOT: u32 = 0;

impl<'a> TrieView<'a> {
    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.label.len()
    }

    /// The children of node `n`.
    #[inline]
    pub fn children(&self, n: u32) -> Range<usize> {
        self.child_start[n as usize] as usize..self.child_start[n as usize + 1] as usize
    }

    /// The child of `n` reached by arc `value`, if any.
    #[inline]
    pub fn child(&self, n: u32, value: u32) -> Option<u32> {
        let range = self.children(n);
        let labels = &self.label[range.clone()];
        labels
            .binary_search(&value)
            .ok()
            .map(|k| (range.start + k) as u32)
    }

    /// The class distribution of node `n`: (classes, counts), default class first.
    #[inline]
    pub fn distribution(&self, n: u32) -> (&'a [u32], &'a [u32]) {
        let range = self.dist_start[n as usize] as usize..self.dist_start[n as usize + 1] as usize;
        (&self.dist_class[range.clone()], &self.dist_count[range])
    }

    /// The default (majority) class of node `n`.
    #[inline]
    pub fn default_class(&self, n: u32) -> u32 {
        self.dist_class[self.dist_start[n as usize] as usize]
    }

    /// Checks every structural invariant the lookups rely on, so that a view over untrusted bytes can
    /// never index out of bounds or loop. `n_symbols` bounds the class ids.
    pub fn validate(&self, n_symbols: u32) -> Result<(), String> {
        let nodes = self.label.len();
        if nodes == 0 {
            return Err("the trie has no root node".into());
        }
        if self.child_start.len() != nodes + 1 || self.dist_start.len() != nodes + 1 {
            return Err("node arrays disagree on the node count".into());
        }
        if self.dist_class.len() != self.dist_count.len() {
            return Err("distribution arrays disagree on their length".into());
        }
        if self.child_start[0] != 1 || self.child_start[nodes] as usize != nodes {
            return Err("child ranges do not cover the nodes after the root".into());
        }
        for n in 0..nodes {
            let (a, b) = (self.child_start[n], self.child_start[n + 1]);
            // Children come after their parent, so a lookup always moves forward and terminates.
            if b < a || (b > a && a as usize <= n) {
                return Err(format!("node {n} has an invalid child range {a}..{b}"));
            }
            if !self.label[a as usize..b as usize]
                .windows(2)
                .all(|w| w[0] < w[1])
            {
                return Err(format!("children of node {n} are not sorted by label"));
            }
        }
        if self.dist_start[0] != 0 || self.dist_start[nodes] as usize != self.dist_class.len() {
            return Err("distribution ranges do not cover the entries".into());
        }
        if self.dist_start.windows(2).any(|w| w[1] <= w[0]) {
            return Err("a node has an empty or inverted distribution".into());
        }
        if self.dist_class.iter().any(|&c| c >= n_symbols) {
            return Err("a distribution names a class outside the symbol table".into());
        }
        if self.dist_count.contains(&0) {
            return Err("a distribution holds a zero count".into());
        }
        Ok(())
    }
}
