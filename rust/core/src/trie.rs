//! The context trie in its compact stored form, and read access to it.
//!
//! Nodes are numbered breadth-first with the root as node 0, so the children of a node are a contiguous
//! run of node ids, their arc labels ascending. Per node the file stores: the arc label leading into
//! it (2 bytes when every symbol id fits, else 4), its child count and the byte length of its class
//! distribution as packed offsets ([`crate::offsets`]), and the distribution itself as a byte run
//! ([`crate::distribution`]), most frequent class first: the first entry is the node's default.

use std::ops::Range;

use crate::distribution::Entries;
use crate::ids::{IdVec, Ids};
use crate::offsets::{OffsetsView, PackedOffsets};

/// The root node's id.
pub const ROOT: u32 = 0;

/// Distributions of at least this many bytes have their total stored beside them, so that a node's
/// total costs a lookup, not a decode of thousands of entries (the root's and its children's).
pub const STORED_TOTAL_BYTES: u64 = 128;

/// An owned trie in stored form, as the builder produces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedTrie {
    pub labels: IdVec,
    pub children: PackedOffsets,
    pub dist_offsets: PackedOffsets,
    pub dist_bytes: Vec<u8>,
    /// Class id of every tie-break rank (distributions store ranks).
    pub classes: Vec<u32>,
    /// The nodes whose distribution takes [`STORED_TOTAL_BYTES`] or more, ascending, and their totals.
    pub total_nodes: Vec<u32>,
    pub total_counts: Vec<u64>,
}

impl EncodedTrie {
    /// Borrowed view.
    pub fn view(&self) -> TrieView<'_> {
        TrieView {
            labels: self.labels.view(),
            children: self.children.view(),
            dist_offsets: self.dist_offsets.view(),
            dist_bytes: &self.dist_bytes,
            classes: &self.classes,
            total_nodes: &self.total_nodes,
            total_counts: &self.total_counts,
        }
    }
}

/// Read access to a stored trie. Construct it only over validated arrays (the model file checks them
/// when it opens).
#[derive(Clone, Copy, Debug)]
pub struct TrieView<'a> {
    pub labels: Ids<'a>,
    pub children: OffsetsView<'a>,
    pub dist_offsets: OffsetsView<'a>,
    pub dist_bytes: &'a [u8],
    /// Class id of every tie-break rank.
    pub classes: &'a [u32],
    /// The nodes with large distributions, ascending, and their totals.
    pub total_nodes: &'a [u32],
    pub total_counts: &'a [u64],
}

impl<'a> TrieView<'a> {
    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.labels.len()
    }

    /// The node ids of the children of `n`.
    #[inline]
    pub fn children(&self, n: u32) -> Range<usize> {
        let r = self.children.range(n as usize);
        r.start as usize + 1..r.end as usize + 1
    }

    /// The child of `n` reached by arc `value`, if any.
    #[inline]
    pub fn child(&self, n: u32, value: u32) -> Option<u32> {
        let range = self.children(n);
        let start = range.start;
        self.labels.find(range, value).map(|k| (start + k) as u32)
    }

    /// The class distribution of node `n`: (class, count) entries, default class first.
    #[inline]
    pub fn distribution(&self, n: u32) -> Entries<'a> {
        let r = self.dist_offsets.range(n as usize);
        Entries::new(
            &self.dist_bytes[r.start as usize..r.end as usize],
            self.classes,
        )
    }

    /// The default (majority) class of node `n`.
    #[inline]
    pub fn default_class(&self, n: u32) -> u32 {
        self.distribution(n)
            .next()
            .expect("validated: no distribution is empty")
            .0
    }

    /// Total of node `n`'s counts: the number of training instances below it.
    pub fn total(&self, n: u32) -> u64 {
        let r = self.dist_offsets.range(n as usize);
        if r.end - r.start >= STORED_TOTAL_BYTES {
            if let Ok(k) = self.total_nodes.binary_search(&n) {
                return self.total_counts[k];
            }
        }
        self.decoded_total(n)
    }

    /// Calls `emit(class, count)` for the first `limit` entries of node `n`'s distribution (best
    /// first) and returns the total of all its counts, in one pass over the entries: the rest are
    /// decoded only when the total is not stored.
    #[inline]
    pub fn top_classes(&self, n: u32, limit: usize, mut emit: impl FnMut(u32, u32)) -> u64 {
        let r = self.dist_offsets.range(n as usize);
        let stored = if r.end - r.start >= STORED_TOTAL_BYTES {
            self.total_nodes
                .binary_search(&n)
                .ok()
                .map(|k| self.total_counts[k])
        } else {
            None
        };
        let mut entries = Entries::new(
            &self.dist_bytes[r.start as usize..r.end as usize],
            self.classes,
        );
        let mut kept = 0u64;
        for (class, count) in entries.by_ref().take(limit) {
            emit(class, count);
            kept += count as u64;
        }
        stored.unwrap_or_else(|| kept + entries.count_sum())
    }

    fn decoded_total(&self, n: u32) -> u64 {
        self.distribution(n).count_sum()
    }

    /// Checks, in constant time, that the arrays have consistent lengths (the quick open).
    pub(crate) fn check_lengths(&self, n_symbols: u32) -> Result<(), String> {
        let nodes = self.labels.len();
        if nodes == 0 {
            return Err("the trie has no root node".into());
        }
        self.children.check_lengths(nodes)?;
        if self.children.total() != nodes as u64 - 1 {
            return Err("child counts do not add up to the node count".into());
        }
        self.dist_offsets.check_lengths(nodes)?;
        if self.dist_offsets.total() != self.dist_bytes.len() as u64 {
            return Err("distribution lengths do not add up to the distribution bytes".into());
        }
        if self.classes.len() != n_symbols as usize {
            return Err("the class table does not fit the symbol count".into());
        }
        if self.total_nodes.len() != self.total_counts.len() {
            return Err("the stored totals have the wrong length".into());
        }
        Ok(())
    }

    /// Checks every invariant the lookups rely on, so that a view over untrusted bytes never indexes
    /// out of bounds, loops or panics. `n_symbols` bounds the class ids.
    pub(crate) fn validate(&self, n_symbols: u32) -> Result<(), String> {
        self.check_lengths(n_symbols)?;
        let nodes = self.labels.len();
        self.children.validate(nodes)?;
        for n in 0..nodes {
            let range = self.children(n as u32);
            // Children come after their parent, so a descent always moves forward.
            if !range.is_empty() && (range.start <= n || range.end > nodes) {
                return Err(format!("node {n} has an invalid child range"));
            }
            if !self.labels.strictly_ascending(range) {
                return Err(format!("children of node {n} are not sorted by label"));
            }
        }
        self.dist_offsets.validate(nodes)?;
        for n in 0..nodes {
            let r = self.dist_offsets.range(n);
            Entries::new(
                &self.dist_bytes[r.start as usize..r.end as usize],
                self.classes,
            )
            .validate()?;
        }
        let large = (0..nodes as u32).filter(|&n| {
            let r = self.dist_offsets.range(n as usize);
            r.end - r.start >= STORED_TOTAL_BYTES
        });
        if !large.eq(self.total_nodes.iter().copied()) {
            return Err("the stored totals do not list the large distributions".into());
        }
        for (&n, &total) in self.total_nodes.iter().zip(self.total_counts) {
            if self.decoded_total(n) != total {
                return Err(format!("node {n} has a wrong stored total"));
            }
        }
        Ok(())
    }
}
