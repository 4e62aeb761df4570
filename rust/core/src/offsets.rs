//! Monotone offsets (where each node's children or distribution start) in about 1.3 bytes per item:
//! a one-byte length per item, the running total every [`BLOCK`] items, and an exception list for
//! lengths of 255 and more.

use std::ops::Range;

/// Items per stored running total: a lookup sums at most `BLOCK - 1` byte lengths.
pub const BLOCK: usize = 32;
const ESCAPE: u8 = u8::MAX;

/// Offsets being built (owned arrays, as written to a model file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedOffsets {
    /// Length of every item, or 255: look it up in the exceptions.
    pub lens: Vec<u8>,
    /// Start of item `b * BLOCK` for every block `b`, then the total.
    pub bases: Vec<u64>,
    /// Items whose length is 255 or more, ascending.
    pub exception_items: Vec<u32>,
    /// Their lengths.
    pub exception_lens: Vec<u64>,
    /// Sum of the lengths pushed so far (not stored).
    pending_total: u64,
}

impl PackedOffsets {
    /// Packs the given item lengths.
    pub fn from_lengths(lengths: impl IntoIterator<Item = u64>) -> Self {
        let mut packed = PackedOffsets::default();
        for len in lengths {
            packed.push(len);
        }
        packed.finish()
    }

    /// Appends the length of the next item.
    pub fn push(&mut self, len: u64) {
        let i = self.lens.len();
        if i % BLOCK == 0 {
            self.bases.push(self.pending_total);
        }
        if len >= ESCAPE as u64 {
            self.lens.push(ESCAPE);
            self.exception_items.push(i as u32);
            self.exception_lens.push(len);
        } else {
            self.lens.push(len as u8);
        }
        self.pending_total += len;
    }

    /// Closes the list: appends the total after the last item.
    pub fn finish(mut self) -> Self {
        self.bases.push(self.pending_total);
        self
    }

    /// Borrowed view.
    pub fn view(&self) -> OffsetsView<'_> {
        OffsetsView {
            lens: &self.lens,
            bases: &self.bases,
            exception_items: &self.exception_items,
            exception_lens: &self.exception_lens,
        }
    }
}

/// Read access to packed offsets, owned or memory-mapped.
#[derive(Clone, Copy, Debug)]
pub struct OffsetsView<'a> {
    pub lens: &'a [u8],
    pub bases: &'a [u64],
    pub exception_items: &'a [u32],
    pub exception_lens: &'a [u64],
}

impl<'a> OffsetsView<'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Sum of all lengths.
    pub fn total(&self) -> u64 {
        *self.bases.last().unwrap_or(&0)
    }

    #[inline]
    fn exception(&self, item: usize) -> u64 {
        let k = self
            .exception_items
            .binary_search(&(item as u32))
            .expect("validated: every escaped item has an exception");
        self.exception_lens[k]
    }

    #[inline]
    fn length(&self, item: usize) -> u64 {
        match self.lens[item] {
            ESCAPE => self.exception(item),
            l => l as u64,
        }
    }

    /// Where item `i` starts and ends.
    #[inline]
    pub fn range(&self, i: usize) -> Range<u64> {
        let block_start = i - i % BLOCK;
        let window = &self.lens[block_start..i];
        // At most 31 bytes: a u32 sum cannot overflow, and vectorises.
        let mut start =
            self.bases[i / BLOCK] + window.iter().map(|&l| l as u32).sum::<u32>() as u64;
        if window.contains(&ESCAPE) {
            for (j, &l) in window.iter().enumerate() {
                if l == ESCAPE {
                    start += self.exception(block_start + j) - ESCAPE as u64;
                }
            }
        }
        start..start + self.length(i)
    }

    /// The ranges of items `i`, `i + 1`, ... computed one from the next (cheaper than [`Self::range`]
    /// for siblings visited in order).
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

    /// Checks the array lengths only (constant time): enough for a quick open, not for safety.
    pub fn check_lengths(&self, items: usize) -> Result<(), String> {
        if self.lens.len() != items
            || self.bases.len() != items.div_ceil(BLOCK) + 1
            || self.exception_items.len() != self.exception_lens.len()
        {
            return Err("offset arrays have the wrong length".into());
        }
        Ok(())
    }

    /// Checks that the arrays are consistent, so [`OffsetsView::range`] never indexes out of bounds.
    pub fn validate(&self, items: usize) -> Result<(), String> {
        self.check_lengths(items)?;
        if !self.exception_items.windows(2).all(|w| w[0] < w[1]) {
            return Err("offset exceptions are not a sorted list".into());
        }
        let escaped = self.lens.iter().filter(|&&l| l == ESCAPE).count();
        if escaped != self.exception_items.len()
            || self
                .exception_items
                .iter()
                .zip(self.exception_lens)
                .any(|(&i, &l)| {
                    i as usize >= items || self.lens[i as usize] != ESCAPE || l < ESCAPE as u64
                })
        {
            return Err("offset exceptions do not match the escaped items".into());
        }
        let mut total = 0u64;
        for i in 0..items {
            if i % BLOCK == 0 && self.bases[i / BLOCK] != total {
                return Err("offset block totals are inconsistent".into());
            }
            total = total
                .checked_add(self.length(i))
                .ok_or("offsets overflow")?;
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
        let end = self.start + self.view.length(self.item);
        let range = self.start..end;
        self.start = end;
        self.item += 1;
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_prefix_sums() {
        let lengths: Vec<u64> = (0..1000u64)
            .map(|i| (i * 37) % 300 + (i % 97) * 1000 * (i % 7 == 0) as u64)
            .collect();
        let packed = PackedOffsets::from_lengths(lengths.iter().copied());
        let view = packed.view();
        view.validate(lengths.len()).unwrap();
        let mut start = 0;
        for (i, &l) in lengths.iter().enumerate() {
            assert_eq!(view.range(i), start..start + l, "item {i}");
            start += l;
        }
        assert_eq!(view.total(), start);
        for from in [0, 1, 31, 32, 33, 500, 999, 1000] {
            let walked: Vec<_> = view.ranges_from(from).collect();
            let direct: Vec<_> = (from..lengths.len()).map(|i| view.range(i)).collect();
            assert_eq!(walked, direct, "from {from}");
        }
    }

    #[test]
    fn validation_catches_inconsistency() {
        let packed = PackedOffsets::from_lengths([1, 300, 2, 5]);
        packed.view().validate(4).unwrap();
        let mut bad = packed.clone();
        bad.lens[0] = 3;
        assert!(bad.view().validate(4).is_err());
        let mut bad = packed.clone();
        bad.exception_items.clear();
        assert!(bad.view().validate(4).is_err());
        assert!(packed.view().validate(5).is_err());
    }
}
