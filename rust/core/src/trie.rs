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

/// A stored structure found broken while a query read it: only a damaged model file has one (the
/// model turns it into [`crate::Error::BadModel`]). Says what is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

const BAD_CHILDREN: Corrupt = Corrupt("a node's child range is invalid");
const BAD_DISTRIBUTION: Corrupt =
    Corrupt("a node's class distribution lies outside the distributions");
const EMPTY_DISTRIBUTION: Corrupt = Corrupt("a node has an empty class distribution");

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

/// Read access to a stored trie. Over a damaged file (checksums forged, or opened without them
/// checked) a lookup reports [`Corrupt`] or answers from the damaged data, but never reads out of
/// bounds, loops or panics: every stored value that indexes or sizes something is checked where it
/// is used.
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
    pub fn children(&self, n: u32) -> Result<Range<usize>, Corrupt> {
        self.child_ids(n, self.children.range(n as usize))
    }

    /// The node ids of `n`'s children from their stored range (what [`TrieView::children`] and a
    /// walk over siblings' ranges read): they lie inside the trie and after `n` (nodes are numbered
    /// breadth-first, so every descent moves forward and ends).
    #[inline]
    pub fn child_ids(&self, n: u32, stored: Range<u64>) -> Result<Range<usize>, Corrupt> {
        if stored.end >= self.labels.len() as u64 || stored.start < n as u64 {
            return Err(BAD_CHILDREN);
        }
        Ok(stored.start as usize + 1..stored.end as usize + 1)
    }

    /// The child of `n` reached by arc `value`, if any.
    #[inline]
    pub fn try_child(&self, n: u32, value: u32) -> Result<Option<u32>, Corrupt> {
        let range = self.children(n)?;
        let start = range.start;
        Ok(self.labels.find(range, value).map(|k| (start + k) as u32))
    }

    /// [`TrieView::try_child`] for a trie known to be sound (see [`TrieView::distribution`]):
    /// None too where a damaged trie has no valid child range. Tests only: queries use
    /// [`TrieView::try_child`], which tells damage apart.
    #[cfg(test)]
    pub(crate) fn child(&self, n: u32, value: u32) -> Option<u32> {
        self.try_child(n, value).ok().flatten()
    }

    /// The entries of node `n`'s class distribution: (class, count), default class first.
    #[inline]
    pub fn entries(&self, n: u32) -> Result<Entries<'a>, Corrupt> {
        let r = self.dist_offsets.range(n as usize);
        let bytes = self
            .dist_bytes
            .get(r.start as usize..r.end as usize)
            .ok_or(BAD_DISTRIBUTION)?;
        Ok(Entries::new(bytes, self.classes))
    }

    /// The class distribution of node `n` as an iterator of (class, count), default class first,
    /// for a trie known to be sound (just built, or verified): over a damaged one it ends early
    /// (queries use [`TrieView::entries`]). Tests only.
    #[cfg(test)]
    pub(crate) fn distribution(&self, n: u32) -> Entries<'a> {
        self.entries(n)
            .unwrap_or_else(|_| Entries::new(&[], self.classes))
    }

    /// The default (majority) class of node `n`, for a trie known to be sound (see
    /// [`TrieView::distribution`]); [`UNKNOWN`] when the node has no entries (a damaged trie).
    #[cfg(test)]
    pub(crate) fn default_class(&self, n: u32) -> u32 {
        self.distribution(n)
            .next()
            .map_or(crate::vocabulary::UNKNOWN, |e| e.0)
    }

    /// The stored total of node `n`, when its distribution (bytes `r`) is large enough to have one.
    #[inline]
    fn stored_total(&self, n: u32, r: &Range<u64>) -> Option<u64> {
        if r.end - r.start < STORED_TOTAL_BYTES {
            return None;
        }
        let k = self.total_nodes.binary_search(&n).ok()?;
        self.total_counts.get(k).copied()
    }

    /// Total of node `n`'s counts: the number of training instances below it.
    pub fn total(&self, n: u32) -> Result<u64, Corrupt> {
        let r = self.dist_offsets.range(n as usize);
        match self.stored_total(n, &r) {
            Some(total) => Ok(total),
            None => Ok(self.entries(n)?.count_sum()),
        }
    }

    /// Calls `emit(class, count)` for the first `limit` entries of node `n`'s distribution (best
    /// first) and returns the total of all its counts, in one pass over the entries: the rest are
    /// decoded only when the total is not stored. Without `want_total` the rest are not read and
    /// the total is 0.
    #[inline]
    pub fn top_classes(
        &self,
        n: u32,
        limit: usize,
        want_total: bool,
        mut emit: impl FnMut(u32, u32),
    ) -> Result<u64, Corrupt> {
        let r = self.dist_offsets.range(n as usize);
        let mut entries = Entries::new(
            self.dist_bytes
                .get(r.start as usize..r.end as usize)
                .ok_or(BAD_DISTRIBUTION)?,
            self.classes,
        );
        let mut kept = 0u64;
        let mut emitted = 0;
        while emitted < limit {
            let Some((class, count)) = entries.try_next()? else {
                break;
            };
            emit(class, count);
            kept = kept.wrapping_add(count as u64);
            emitted += 1;
        }
        if emitted == 0 && limit > 0 {
            return Err(EMPTY_DISTRIBUTION);
        }
        if !want_total {
            return Ok(0);
        }
        Ok(match self.stored_total(n, &r) {
            Some(total) => total,
            None => kept.wrapping_add(entries.count_sum()),
        })
    }

    fn decoded_total(&self, n: u32) -> Result<u64, Corrupt> {
        Ok(self.entries(n)?.count_sum())
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
            let range = self
                .children(n as u32)
                .map_err(|_| format!("node {n} has an invalid child range"))?;
            if !self.labels.strictly_ascending(range) {
                return Err(format!("children of node {n} are not sorted by label"));
            }
        }
        self.dist_offsets.validate(nodes)?;
        let mut large = Vec::new();
        for n in 0..nodes as u32 {
            let r = self.dist_offsets.range(n as usize);
            self.entries(n).map_err(|e| e.0.to_string())?.validate()?;
            if r.end - r.start >= STORED_TOTAL_BYTES {
                large.push(n);
            }
        }
        if large != self.total_nodes {
            return Err("the stored totals do not list the large distributions".into());
        }
        for (&n, &total) in self.total_nodes.iter().zip(self.total_counts) {
            if self.decoded_total(n) != Ok(total) {
                return Err(format!("node {n} has a wrong stored total"));
            }
        }
        Ok(())
    }
}
