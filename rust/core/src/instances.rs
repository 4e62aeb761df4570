//! Instances: W context features and one class each, read without materialising them.
//!
//! Feature `f` counts from the farthest context position (`f = 0`, TiMBL's column 1) to the nearest
//! (`f = W - 1`, the token right before the target), as in OLIFANT's `l{W}r0` files.

use crate::error::{Error, Result};
use crate::ids::IdVec;

/// Largest supported context width.
pub const MAX_WIDTH: usize = 64;

/// Read-only access to a set of instances.
pub trait Instances: Sync {
    /// Number of instances.
    fn len(&self) -> usize;
    /// Whether there are no instances.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of features (the context width W).
    fn width(&self) -> usize;
    /// Value of feature `f` of instance `i`.
    fn feature(&self, i: usize, f: usize) -> u32;
    /// Class (target symbol) of instance `i`.
    fn class(&self, i: usize) -> u32;
}

/// Checks that a width is in the supported range.
pub fn check_width(width: usize) -> Result<()> {
    if (1..=MAX_WIDTH).contains(&width) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "width must be between 1 and {MAX_WIDTH}, got {width}"
        )))
    }
}

/// Blocks of token ids windowed as in SPEC §1: every token of a block is a target, its features are the
/// W previous tokens of the same block, left-padded with the padding symbol.
pub struct TokenWindows {
    /// The token ids, at the width the vocabulary needs.
    tokens: IdVec,
    /// Per token: its offset inside its block, saturated at 255 (enough for any width <= 64).
    offset_in_block: Vec<u8>,
    width: usize,
    pad: u32,
}

impl TokenWindows {
    /// Builds the windows over `tokens`, split into blocks at the given `block_lengths`.
    pub fn new(tokens: Vec<u32>, block_lengths: &[usize], width: usize, pad: u32) -> Result<Self> {
        Self::from_ids(IdVec::U32(tokens), block_lengths, width, pad)
    }

    /// [`TokenWindows::new`] over ids of any width.
    pub fn from_ids(
        tokens: IdVec,
        block_lengths: &[usize],
        width: usize,
        pad: u32,
    ) -> Result<Self> {
        check_width(width)?;
        let total: usize = block_lengths.iter().sum();
        if total != tokens.len() {
            return Err(Error::InvalidInput(format!(
                "block lengths add up to {total} but {} tokens were given",
                tokens.len()
            )));
        }
        if let Some(t) = tokens.view().max().filter(|&t| t >= pad) {
            return Err(Error::InvalidInput(format!(
                "token id {t} is not below the padding id {pad}"
            )));
        }
        let mut offset_in_block = Vec::with_capacity(tokens.len());
        for &len in block_lengths {
            offset_in_block.extend((0..len).map(|i| i.min(255) as u8));
        }
        Ok(TokenWindows {
            tokens,
            offset_in_block,
            width,
            pad,
        })
    }

    /// The padding symbol.
    pub fn pad(&self) -> u32 {
        self.pad
    }
}

impl Instances for TokenWindows {
    fn len(&self) -> usize {
        self.tokens.len()
    }
    fn width(&self) -> usize {
        self.width
    }
    #[inline]
    fn feature(&self, i: usize, f: usize) -> u32 {
        let back = self.width - f;
        if back > self.offset_in_block[i] as usize {
            self.pad
        } else {
            self.tokens.get(i - back)
        }
    }
    #[inline]
    fn class(&self, i: usize) -> u32 {
        self.tokens.get(i)
    }
}

/// Instances stored as rows of W features followed by the class (as read from a column file).
pub struct InstanceTable {
    rows: Vec<u32>,
    width: usize,
}

impl InstanceTable {
    /// Wraps a flat row-major table of `width + 1` symbols per instance.
    pub fn new(rows: Vec<u32>, width: usize) -> Result<Self> {
        check_width(width)?;
        if rows.len() % (width + 1) != 0 {
            return Err(Error::InvalidInput(format!(
                "{} symbols do not make whole rows of {} features and a class",
                rows.len(),
                width
            )));
        }
        Ok(InstanceTable { rows, width })
    }

    /// The features of instance `i`.
    pub fn features(&self, i: usize) -> &[u32] {
        let start = i * (self.width + 1);
        &self.rows[start..start + self.width]
    }
}

impl Instances for InstanceTable {
    fn len(&self) -> usize {
        self.rows.len() / (self.width + 1)
    }
    fn width(&self) -> usize {
        self.width
    }
    #[inline]
    fn feature(&self, i: usize, f: usize) -> u32 {
        self.rows[i * (self.width + 1) + f]
    }
    #[inline]
    fn class(&self, i: usize) -> u32 {
        self.rows[i * (self.width + 1) + self.width]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_pad_each_block_on_its_own() {
        // Two blocks: [1 2 3] and [4 5]; width 2; pad 9.
        let w = TokenWindows::new(vec![1, 2, 3, 4, 5], &[3, 2], 2, 9).unwrap();
        let rows: Vec<Vec<u32>> = (0..w.len())
            .map(|i| vec![w.feature(i, 0), w.feature(i, 1), w.class(i)])
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![9, 9, 1],
                vec![9, 1, 2],
                vec![1, 2, 3],
                vec![9, 9, 4],
                vec![9, 4, 5]
            ]
        );
    }

    #[test]
    fn u16_ids_window_like_u32_ids() {
        let wide = TokenWindows::new(vec![1, 2, 3, 4, 5], &[3, 2], 2, 9).unwrap();
        let narrow =
            TokenWindows::from_ids(IdVec::U16(vec![1, 2, 3, 4, 5]), &[3, 2], 2, 9).unwrap();
        for i in 0..5 {
            assert_eq!(wide.class(i), narrow.class(i));
            for f in 0..2 {
                assert_eq!(wide.feature(i, f), narrow.feature(i, f));
            }
        }
    }

    #[test]
    fn windows_reject_bad_lengths_and_widths() {
        assert!(TokenWindows::new(vec![1, 2], &[3], 2, 9).is_err());
        assert!(TokenWindows::new(vec![1, 2], &[2], 0, 9).is_err());
        assert!(TokenWindows::new(vec![1, 2], &[2], 65, 9).is_err());
        assert!(TokenWindows::new(vec![1, 9], &[2], 2, 9).is_err());
    }

    #[test]
    fn table_rows() {
        let t = InstanceTable::new(vec![1, 2, 3, 4, 5, 6], 2).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.features(1), &[4, 5]);
        assert_eq!(t.class(1), 6);
        assert!(InstanceTable::new(vec![1, 2, 3, 4], 2).is_err());
    }
}
