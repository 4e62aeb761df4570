//! Instances: W context features and one class each, read without materialising them, and the
//! windowing rule that makes them from text.
//!
//! Feature `f` counts from the farthest context position (`f = 0`, TiMBL's column 1) to the nearest
//! (`f = W - 1`, the token right before the target), as in OLIFANT's `l{W}r0` files.
//!
//! Windowing: text comes in blocks (documents, lines); every token of a block is a target, and its
//! context is the W tokens before it in the same block, left-padded with the padding symbol when the
//! block has fewer (a block start looks like W padding symbols). A query's prefix is windowed by the
//! same rule: its last W ids count, a shorter prefix is a block start ([`Context::new`]). Training
//! ([`TokenWindows`]), evaluation ([`windows`]) and queries share that rule ([`back`]).

use std::sync::OnceLock;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::ids::{IdVec, Ids};

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
    /// An xxh3-64 hash of the instances' content (their count, width, and every feature and class
    /// in order): what a cluster build's spilled partitions carry so that the assembly refuses a
    /// partition built from other instances ([`crate::build`]). A type may hash what its instances
    /// follow from instead ([`TokenWindows`]: its text).
    fn fingerprint(&self) -> u64 {
        let mut hasher = Xxh3::new();
        hasher.update(&(self.len() as u64).to_le_bytes());
        hasher.update(&(self.width() as u64).to_le_bytes());
        for i in 0..self.len() {
            for f in 0..self.width() {
                hasher.update(&self.feature(i, f).to_le_bytes());
            }
            hasher.update(&self.class(i).to_le_bytes());
        }
        hasher.digest()
    }
}

/// `width` (of any integer type) as a usize, once checked to be in the supported range
/// 1..=[`MAX_WIDTH`]: the one check and wording for every width a user or a file gives.
pub fn check_width<W: TryInto<usize> + Copy + std::fmt::Display>(width: W) -> Result<usize> {
    match width.try_into() {
        Ok(w) if (1..=MAX_WIDTH).contains(&w) => Ok(w),
        _ => Err(Error::InvalidInput(format!(
            "width must be between 1 and {MAX_WIDTH}, got {width}"
        ))),
    }
}

/// The windowing rule: feature `f` of a W-wide context whose block has `available` ids before the
/// target is the id `W - f` positions back, or padding (None) when the block has fewer.
#[inline]
pub fn back(width: usize, f: usize, available: usize) -> Option<usize> {
    let back = width - f;
    (back <= available).then_some(back)
}

/// The W ids of one context (features in column order), held on the stack.
#[derive(Clone, Copy)]
pub struct Context {
    ids: [u32; MAX_WIDTH],
    width: usize,
}

impl Context {
    /// The context of a target preceded by `prefix` (ids of any length): its last `width` ids,
    /// left-padded with `pad` when it is shorter. `width` must be in 1..=[`MAX_WIDTH`].
    #[inline]
    pub fn new(prefix: &[u32], width: usize, pad: u32) -> Context {
        assert!((1..=MAX_WIDTH).contains(&width), "width out of range");
        let mut ids = [pad; MAX_WIDTH];
        for (f, slot) in ids[..width].iter_mut().enumerate() {
            if let Some(b) = back(width, f, prefix.len()) {
                *slot = prefix[prefix.len() - b];
            }
        }
        Context { ids, width }
    }
}

impl std::ops::Deref for Context {
    type Target = [u32];
    #[inline]
    fn deref(&self) -> &[u32] {
        &self.ids[..self.width]
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The contexts (row-major, `width` ids each) and targets of every token of every block of `tokens`
/// (concatenated blocks of the given lengths): the instances [`TokenWindows`] makes for training.
pub fn windows(
    tokens: &[u32],
    block_lengths: &[u64],
    width: usize,
    pad: u32,
) -> Result<(Vec<u32>, Vec<u32>)> {
    check_width(width)?;
    check_block_lengths(block_lengths, tokens.len())?;
    let mut contexts = Vec::with_capacity(tokens.len() * width);
    let mut start = 0;
    for &len in block_lengths {
        let block = &tokens[start..start + len as usize];
        for end in 0..block.len() {
            contexts.extend_from_slice(&Context::new(&block[..end], width, pad));
        }
        start += len as usize;
    }
    Ok((contexts, tokens.to_vec()))
}

/// Checks that block lengths add up to the number of tokens.
fn check_block_lengths(block_lengths: &[u64], tokens: usize) -> Result<()> {
    let total = block_lengths
        .iter()
        .try_fold(0u64, |sum, &l| sum.checked_add(l));
    if total != Some(tokens as u64) {
        return Err(Error::InvalidInput(format!(
            "block lengths add up to {} but {tokens} tokens were given",
            total.map_or("more than 2^64".to_string(), |t| t.to_string())
        )));
    }
    Ok(())
}

/// Blocks of token ids, windowed: every token of a block is a target, its features are the W previous
/// tokens of the same block, left-padded with the padding symbol ([`back`]).
pub struct TokenWindows {
    /// The token ids, at the width the vocabulary needs.
    tokens: IdVec,
    /// Per token: its offset inside its block, saturated at 255 (enough for any width <= 64).
    offset_in_block: Vec<u8>,
    width: usize,
    pad: u32,
    /// [`Instances::fingerprint`], computed at its first call.
    fingerprint: OnceLock<u64>,
}

impl TokenWindows {
    /// The windows over `tokens` (ids of any width), split into blocks of the given lengths; every
    /// id must lie below `pad`.
    pub fn new(tokens: IdVec, block_lengths: &[u64], width: usize, pad: u32) -> Result<Self> {
        check_width(width)?;
        check_block_lengths(block_lengths, tokens.len())?;
        // The padding id is the vocabulary's size: every token lies below it.
        if let Some(t) = tokens.view().max().filter(|&t| t >= pad) {
            return Err(Error::outside_vocabulary(t, "the tokenizer's", pad));
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
            fingerprint: OnceLock::new(),
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
        match back(self.width, f, self.offset_in_block[i] as usize) {
            Some(b) => self.tokens.get(i - b),
            None => self.pad,
        }
    }
    #[inline]
    fn class(&self, i: usize) -> u32 {
        self.tokens.get(i)
    }
    /// A hash of what the instances follow from, computed once (a pass over the text): the width,
    /// the padding id, the token ids (as u32, whatever width holds them) and each token's offset in
    /// its block (saturated as stored: it tells where every non-empty block starts).
    fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            let mut hasher = Xxh3::new();
            for word in [self.width as u64, self.pad as u64, self.tokens.len() as u64] {
                hasher.update(&word.to_le_bytes());
            }
            match self.tokens.view() {
                Ids::U32(ids) => hasher.update(bytemuck::cast_slice(ids)),
                Ids::U16(ids) => {
                    let mut wide = [0u32; 4096];
                    for chunk in ids.chunks(wide.len()) {
                        for (w, &id) in wide.iter_mut().zip(chunk) {
                            *w = id as u32;
                        }
                        hasher.update(bytemuck::cast_slice(&wide[..chunk.len()]));
                    }
                }
            }
            hasher.update(&self.offset_in_block);
            hasher.digest()
        })
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
        let w = TokenWindows::new(IdVec::U32(vec![1, 2, 3, 4, 5]), &[3, 2], 2, 9).unwrap();
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
        let wide = TokenWindows::new(IdVec::U32(vec![1, 2, 3, 4, 5]), &[3, 2], 2, 9).unwrap();
        let narrow = TokenWindows::new(IdVec::U16(vec![1, 2, 3, 4, 5]), &[3, 2], 2, 9).unwrap();
        for i in 0..5 {
            assert_eq!(wide.class(i), narrow.class(i));
            for f in 0..2 {
                assert_eq!(wide.feature(i, f), narrow.feature(i, f));
            }
        }
    }

    #[test]
    fn windows_reject_bad_lengths_and_widths() {
        assert!(TokenWindows::new(IdVec::U32(vec![1, 2]), &[3], 2, 9).is_err());
        assert!(TokenWindows::new(IdVec::U32(vec![1, 2]), &[2], 0, 9).is_err());
        assert!(TokenWindows::new(IdVec::U32(vec![1, 2]), &[2], 65, 9).is_err());
        assert!(TokenWindows::new(IdVec::U32(vec![1, 9]), &[2], 2, 9).is_err());
    }

    #[test]
    fn a_prefix_keeps_its_last_ids_and_a_short_one_is_padded() {
        assert_eq!(&*Context::new(&[1, 2, 3, 4], 3, 9), &[2, 3, 4]);
        assert_eq!(&*Context::new(&[1, 2, 3], 3, 9), &[1, 2, 3]);
        assert_eq!(&*Context::new(&[5], 3, 9), &[9, 9, 5]);
        assert_eq!(&*Context::new(&[], 2, 9), &[9, 9]);
        assert_eq!(Context::new(&[7; 100], MAX_WIDTH, 0).len(), MAX_WIDTH);
    }

    #[test]
    fn windows_are_the_training_instances() {
        let (tokens, lengths) = (vec![1, 2, 3, 4, 5, 6], [3, 0, 2, 1]);
        for width in [1, 2, 4] {
            let train = TokenWindows::new(IdVec::U32(tokens.clone()), &lengths, width, 9).unwrap();
            let (contexts, targets) = windows(&tokens, &lengths, width, 9).unwrap();
            assert_eq!(targets, tokens);
            for i in 0..train.len() {
                let row: Vec<u32> = (0..width).map(|f| train.feature(i, f)).collect();
                assert_eq!(
                    &contexts[i * width..(i + 1) * width],
                    &row[..],
                    "width {width}"
                );
                // The same as the context of the block's prefix before the target.
                let block_start = [0, 0, 0, 3, 3, 5][i];
                let prefix = &tokens[block_start..i];
                assert_eq!(&*Context::new(prefix, width, 9), &row[..]);
            }
        }
        assert!(windows(&tokens, &[3, 2], 2, 9).is_err());
        assert!(windows(&tokens, &[6], 0, 9).is_err());
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
