//! Monotone offsets (where each node's children or distribution start) in about 1.14 bytes per item,
//! read with one cache line: 64-byte records, each holding the running total before its first item
//! (u64) and the one-byte lengths of the next [`BLOCK`] items; lengths of 255 and more are escaped to
//! an exception list. One more record at the end holds the total.

use std::ops::Range;

/// The range [`OffsetsView::range`] gives for offsets that contradict themselves: it lies past the
/// end of every array, so the bounds check the caller makes anyway reports it.
pub const POISON: Range<u64> = u64::MAX..u64::MAX;

/// Items per record: a lookup sums at most `BLOCK - 1` byte lengths of the same cache line.
pub const BLOCK: usize = 56;
/// u64 words per record: the running total, then `BLOCK` length bytes.
const WORDS: usize = 8;
const ESCAPE: u8 = u8::MAX;

/// The length bytes of the record that starts at word `at`.
#[inline]
fn lens_of(records: &[u64], at: usize) -> &[u8] {
    bytemuck::cast_slice(&records[at + 1..at + WORDS])
}

/// Offsets being built (owned arrays, as written to a model file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedOffsets {
    /// The records, `WORDS` words each, then the closing record.
    pub records: Vec<u64>,
    /// Items whose length is 255 or more, ascending.
    pub exception_items: Vec<u32>,
    /// Their lengths.
    pub exception_lens: Vec<u64>,
    /// Items pushed so far (not stored: the owner knows its item count).
    items: usize,
    /// Sum of the lengths pushed so far (not stored).
    pending_total: u64,
}

impl PackedOffsets {
    /// Appends the length of the next item.
    pub fn push(&mut self, len: u64) {
        let i = self.items;
        if i % BLOCK == 0 {
            self.records.push(self.pending_total);
            self.records.extend([0u64; WORDS - 1]);
        }
        let byte = if len >= ESCAPE as u64 {
            self.exception_items.push(i as u32);
            self.exception_lens.push(len);
            ESCAPE
        } else {
            len as u8
        };
        let at = (i / BLOCK) * WORDS;
        bytemuck::cast_slice_mut::<u64, u8>(&mut self.records[at + 1..at + WORDS])[i % BLOCK] =
            byte;
        self.items += 1;
        self.pending_total += len;
    }

    /// Closes the list: appends the record holding the total.
    pub fn finish(mut self) -> Self {
        self.records.push(self.pending_total);
        self.records.extend([0u64; WORDS - 1]);
        self
    }

    /// Borrowed view.
    pub fn view(&self) -> OffsetsView<'_> {
        OffsetsView {
            records: &self.records,
            items: self.items,
            exception_items: &self.exception_items,
            exception_lens: &self.exception_lens,
        }
    }
}

/// Read access to packed offsets, owned or memory-mapped.
#[derive(Clone, Copy, Debug)]
pub struct OffsetsView<'a> {
    pub records: &'a [u64],
    /// Number of items (known to the owner: the trie's node count).
    pub items: usize,
    pub exception_items: &'a [u32],
    pub exception_lens: &'a [u64],
}

impl<'a> OffsetsView<'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Sum of all lengths.
    pub fn total(&self) -> u64 {
        self.records
            .len()
            .checked_sub(WORDS)
            .map_or(0, |at| self.records[at])
    }

    #[inline]
    fn exception(&self, item: usize) -> Option<u64> {
        let k = self.exception_items.binary_search(&(item as u32)).ok()?;
        self.exception_lens.get(k).copied()
    }

    /// The length of `item` (< `items`), None when its exception is missing.
    #[inline]
    fn length(&self, item: usize) -> Option<u64> {
        match lens_of(self.records, (item / BLOCK) * WORDS)[item % BLOCK] {
            ESCAPE => self.exception(item),
            l => Some(l as u64),
        }
    }

    /// Where item `i` starts and ends.
    ///
    /// Never panics: for an item past the end, or offsets that contradict themselves (only a
    /// damaged file has those), the range ends past the end of any array (at worst [`POISON`]), so
    /// the bounds check every caller makes before using it (it indexes a stored array) reports it.
    #[inline]
    pub fn range(&self, i: usize) -> Range<u64> {
        if i >= self.items {
            return POISON;
        }
        // In bounds: `check_lengths` (run when the file is opened) sized the records for the items.
        let at = (i / BLOCK) * WORDS;
        let lens = lens_of(self.records, at);
        let window = &lens[..i % BLOCK];
        // At most 55 bytes: a u32 sum cannot overflow; one pass sums and looks for escapes.
        let (mut sum, mut escaped) = (0u32, false);
        for &l in window {
            sum += l as u32;
            escaped |= l == ESCAPE;
        }
        let mut start = self.records[at].saturating_add(sum as u64);
        if escaped {
            for (j, &l) in window.iter().enumerate() {
                if l == ESCAPE {
                    let extra = self.exception(i - i % BLOCK + j);
                    match extra.and_then(|e| e.checked_sub(ESCAPE as u64)) {
                        Some(extra) => start = start.saturating_add(extra),
                        None => return POISON,
                    }
                }
            }
        }
        let len = match lens[i % BLOCK] {
            ESCAPE => match self.exception(i) {
                Some(len) => len,
                None => return POISON,
            },
            l => l as u64,
        };
        start..start.saturating_add(len)
    }

    /// The ranges of items `i`, `i + 1`, ... computed one from the next (cheaper than [`Self::range`]
    /// for siblings visited in order; damaged offsets give ranges past any array, as there).
    #[inline]
    pub fn ranges_from(&self, i: usize) -> RangeCursor<'a> {
        let start = if i < self.len() {
            self.range(i).start
        } else {
            self.total()
        };
        RangeCursor {
            view: *self,
            item: i,
            start,
        }
    }

    /// Checks, in constant time, that the arrays have consistent lengths (the quick open).
    pub(crate) fn check_lengths(&self, items: usize) -> Result<(), String> {
        if self.items != items
            || self.records.len() != (items.div_ceil(BLOCK) + 1) * WORDS
            || self.exception_items.len() != self.exception_lens.len()
        {
            return Err("offset arrays have the wrong length".into());
        }
        Ok(())
    }

    /// Checks that the arrays are consistent, so [`OffsetsView::range`] never indexes out of bounds.
    pub(crate) fn validate(&self, items: usize) -> Result<(), String> {
        self.check_lengths(items)?;
        if !self.exception_items.windows(2).all(|w| w[0] < w[1]) {
            return Err("offset exceptions are not a sorted list".into());
        }
        let escaped = (0..items)
            .filter(|&i| lens_of(self.records, (i / BLOCK) * WORDS)[i % BLOCK] == ESCAPE)
            .count();
        if escaped != self.exception_items.len()
            || self
                .exception_items
                .iter()
                .zip(self.exception_lens)
                .any(|(&i, &l)| {
                    i as usize >= items
                        || lens_of(self.records, (i as usize / BLOCK) * WORDS)[i as usize % BLOCK]
                            != ESCAPE
                        || l < ESCAPE as u64
                })
        {
            return Err("offset exceptions do not match the escaped items".into());
        }
        let mut total = 0u64;
        for i in 0..items {
            if i % BLOCK == 0 && self.records[(i / BLOCK) * WORDS] != total {
                return Err("offset block totals are inconsistent".into());
            }
            total = self
                .length(i)
                .and_then(|l| total.checked_add(l))
                .ok_or("offsets overflow")?;
        }
        // Length bytes past the last item, and the closing record's, are zero.
        let last_block: &[u8] = match items % BLOCK {
            0 => &[],
            used => &lens_of(self.records, (items / BLOCK) * WORDS)[used..],
        };
        let closing = lens_of(self.records, self.records.len() - WORDS);
        if last_block.iter().chain(closing).any(|&b| b != 0) {
            return Err("offset records carry stray lengths".into());
        }
        if self.total() != total {
            return Err("offset total is inconsistent".into());
        }
        Ok(())
    }
}

/// Consecutive item ranges, see [`OffsetsView::ranges_from`].
pub struct RangeCursor<'a> {
    view: OffsetsView<'a>,
    item: usize,
    start: u64,
}

impl Iterator for RangeCursor<'_> {
    type Item = Range<u64>;

    #[inline]
    fn next(&mut self) -> Option<Range<u64>> {
        if self.item >= self.view.len() {
            return None;
        }
        // A missing exception poisons this range and every later one (see `range`).
        let end = self
            .view
            .length(self.item)
            .map_or(u64::MAX, |len| self.start.saturating_add(len));
        let range = self.start..end;
        self.start = end;
        self.item += 1;
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The given item lengths, packed.
    fn packed(lengths: impl IntoIterator<Item = u64>) -> PackedOffsets {
        let mut packed = PackedOffsets::default();
        for len in lengths {
            packed.push(len);
        }
        packed.finish()
    }

    #[test]
    fn ranges_match_prefix_sums() {
        let lengths: Vec<u64> = (0..1000u64)
            .map(|i| (i * 37) % 300 + (i % 97) * 1000 * (i % 7 == 0) as u64)
            .collect();
        let packed = packed(lengths.iter().copied());
        let view = packed.view();
        view.validate(lengths.len()).unwrap();
        let mut start = 0;
        for (i, &l) in lengths.iter().enumerate() {
            assert_eq!(view.range(i), start..start + l, "item {i}");
            start += l;
        }
        assert_eq!(view.total(), start);
        for from in [0, 1, 55, 56, 57, 500, 999, 1000] {
            let walked: Vec<_> = view.ranges_from(from).collect();
            let direct: Vec<_> = (from..lengths.len()).map(|i| view.range(i)).collect();
            assert_eq!(walked, direct, "from {from}");
        }
    }

    #[test]
    fn validation_catches_inconsistency() {
        let packed = packed([1, 300, 2, 5]);
        packed.view().validate(4).unwrap();
        let mut bad = packed.clone();
        bad.records[1] ^= 3;
        assert!(bad.view().validate(4).is_err());
        let mut bad = packed.clone();
        bad.exception_items.clear();
        assert!(bad.view().validate(4).is_err());
        assert!(packed.view().validate(5).is_err());
        let mut stray = packed.clone();
        stray.records[2] = 1 << 40; // a length byte past the fourth item
        assert!(stray.view().validate(4).is_err());
    }
}
