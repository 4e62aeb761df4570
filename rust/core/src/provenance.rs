//! The provenance index: every training token's position, ordered so that the occurrences of a
//! context followed by a token are one range of it (what `memlm explain` cites as evidence).
//!
//! Rules:
//! - Positions index the Kneser-Ney copy of the training text (`KneserNey::text`: blocks, each
//!   preceded by the padding id), which the index shares instead of storing the ids again. Every
//!   position of a token (not of a padding id) is in the index once.
//! - A position's *key* is its token, then its context's values in the model's feature order (the
//!   order the IGTree matches them), a context being the W ids before the token in its block, the
//!   padding id where the block has fewer ([`crate::instances::back`]). Positions are sorted by key,
//!   then by position: the build is deterministic, and the occurrences of a token after a context
//!   matched to depth d (its first d values in feature order) are the range [`find`] returns.
//! - Stored bit-packed: `bits` = the bits of the largest position, each position in `bits`
//!   consecutive bits of little-endian u64 words (at 1e7 tokens 24 bits, 3 bytes per token).

use std::cmp::Ordering;
use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ids::Ids;
use crate::instances::back;
use crate::model_file::ModelFile;

/// The provenance index as built or stored: bit-packed positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedPositions {
    /// Bits per position (1..=32).
    pub bits: u32,
    /// How many positions.
    pub len: usize,
    /// The bits, little-endian, position i at bits `i * bits ..`; one spare word at the end, so that
    /// a read of two words never passes the slice.
    pub words: Vec<u64>,
}

/// A read-only view of the packed positions (as stored in a model file).
#[derive(Clone, Copy, Debug)]
pub struct PositionsView<'a> {
    pub bits: u32,
    pub len: usize,
    pub words: &'a [u64],
}

impl PackedPositions {
    /// Packs `positions` at the bits of the largest.
    pub fn pack(positions: &[u32]) -> PackedPositions {
        let largest = positions.iter().copied().max().unwrap_or(0);
        let bits = (32 - largest.leading_zeros()).max(1);
        let mut words = vec![0u64; (positions.len() * bits as usize).div_ceil(64) + 1];
        for (i, &p) in positions.iter().enumerate() {
            let at = i * bits as usize;
            let (word, shift) = (at / 64, at % 64);
            words[word] |= (p as u64) << shift;
            if shift + bits as usize > 64 {
                words[word + 1] |= (p as u64) >> (64 - shift);
            }
        }
        PackedPositions {
            bits,
            len: positions.len(),
            words,
        }
    }

    /// A view of these positions.
    pub fn view(&self) -> PositionsView<'_> {
        PositionsView {
            bits: self.bits,
            len: self.len,
            words: &self.words,
        }
    }
}

impl<'a> PositionsView<'a> {
    /// A view of stored words; an error unless they hold `len` positions of `bits` bits and the
    /// spare word.
    pub fn new(bits: u64, len: u64, words: &'a [u64]) -> std::result::Result<Self, String> {
        let need = len
            .checked_mul(bits)
            .map(|b| b.div_ceil(64) + 1)
            .filter(|_| (1..=32).contains(&bits));
        match need {
            Some(need) if need == words.len() as u64 => Ok(PositionsView {
                bits: bits as u32,
                len: len as usize,
                words,
            }),
            _ => Err("the provenance positions do not match their bit width and count".into()),
        }
    }

    /// Position `i` (`i < len`).
    #[inline]
    pub fn get(&self, i: usize) -> usize {
        let at = i * self.bits as usize;
        let (word, shift) = (at / 64, at % 64);
        let low = self.words[word] >> shift;
        let high = if shift == 0 {
            0
        } else {
            self.words[word + 1] << (64 - shift)
        };
        ((low | high) & ((1u64 << self.bits) - 1)) as usize
    }
}

/// A stored provenance index: the positions and the opaque origins of the blocks.
#[derive(Clone, Copy, Debug)]
pub struct ProvenanceView<'a> {
    pub positions: PositionsView<'a>,
    pub origins: &'a [u8],
}

impl ProvenanceView<'_> {
    /// Checks that the positions are the tokens of `text` (blocks each preceded by `pad`), each
    /// once, in the order of their keys at `width` in feature `order` (a
    /// [`crate::format::Check::Full`] check: a pass over the index and the text).
    pub fn validate(
        &self,
        text: Ids,
        pad: u32,
        width: usize,
        order: &[usize],
    ) -> std::result::Result<(), String> {
        let mut seen = vec![false; text.len()];
        for i in 0..self.positions.len {
            let p = self.positions.get(i);
            if p >= text.len() || text.get(p) == pad || std::mem::replace(&mut seen[p], true) {
                return Err("the provenance index does not match the training text".into());
            }
        }
        let tokens = (0..text.len()).filter(|&p| text.get(p) != pad).count();
        if tokens != self.positions.len {
            return Err("the provenance index misses training tokens".into());
        }
        let in_order = (1..self.positions.len).into_par_iter().all(|i| {
            let (a, b) = (self.positions.get(i - 1), self.positions.get(i));
            (key(text, a, width, order, pad), a) < (key(text, b, width, order, pad), b)
        });
        if !in_order {
            return Err("the provenance index is out of order".into());
        }
        Ok(())
    }
}

/// A model's provenance index with what a look-up needs: the text it indexes, the width, the
/// feature order and the padding id.
pub struct Index<'a> {
    file: &'a ModelFile,
    view: ProvenanceView<'a>,
    text: Ids<'a>,
    width: usize,
    order: Vec<usize>,
    pad: u32,
}

impl<'a> Index<'a> {
    /// The index of a model file (None when it has none), checksums verified at the first call.
    pub fn of(file: &'a ModelFile) -> Result<Option<Index<'a>>> {
        Ok(file.checked_provenance()?.map(|(view, kn)| Index {
            file,
            view,
            text: kn.text,
            width: file.params().width,
            order: file.feature_order().iter().map(|&f| f as usize).collect(),
            pad: kn.pad,
        }))
    }

    /// Up to `count` positions (in the Kneser-Ney text) where `token` follows `context` (W ids in
    /// column order) matched to `depth` values in feature order, spread evenly over all of them, and
    /// how many there are in all. An error for a context of another width or a depth beyond it.
    pub fn occurrences(
        &self,
        token: u32,
        context: &[u32],
        depth: usize,
        count: usize,
    ) -> Result<(usize, Vec<usize>)> {
        if context.len() != self.width || depth > self.width {
            return Err(Error::InvalidInput(format!(
                "a provenance look-up takes {} context ids and a depth of at most that, got {} and {depth}",
                self.width,
                context.len()
            )));
        }
        let values: Vec<u32> = self.order[..depth].iter().map(|&f| context[f]).collect();
        let range = find(
            self.view.positions,
            self.text,
            self.width,
            &self.order,
            self.pad,
            token,
            &values,
        );
        let total = range.len();
        let picked: Vec<usize> = (0..count.min(total))
            .map(|i| {
                self.view
                    .positions
                    .get(range.start + i * total / count.min(total))
            })
            .collect();
        // A damaged index (positions out of order, or not the tokens) must not cite wrong passages.
        let mut query = Vec::with_capacity(depth + 1);
        query.push(token);
        query.extend_from_slice(&values);
        let wrong = |&p: &usize| {
            self.text.try_get(p).is_none_or(|id| id == self.pad)
                || compare_prefix(self.text, p, self.width, &self.order, self.pad, &query)
                    != Ordering::Equal
        };
        if picked.iter().any(wrong) {
            let reason = "the provenance index does not match the training text";
            return Err(self.file.bad(reason.into()));
        }
        Ok((total, picked))
    }

    /// The opaque origins of the blocks, as training stored them.
    pub fn origins(&self) -> &'a [u8] {
        self.view.origins
    }
}

/// The key of the target at `position` of `text` compared with `query` (a token, then values in
/// feature order): the order of the first `query.len()` parts of the key.
fn compare_prefix(
    text: Ids,
    position: usize,
    width: usize,
    order: &[usize],
    pad: u32,
    query: &[u32],
) -> Ordering {
    let Some((&token, values)) = query.split_first() else {
        return Ordering::Equal;
    };
    let Some(id) = text.try_get(position) else {
        return Ordering::Greater; // a damaged index: no panic, and `occurrences` refuses the result
    };
    match id.cmp(&token) {
        Ordering::Equal => {}
        other => return other,
    }
    let available = available(text, position, width, pad);
    for (&f, &value) in order.iter().zip(values) {
        let id = back(width, f, available).map_or(pad, |b| text.get(position - b));
        match id.cmp(&value) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

/// How many ids before `position` are in its block, at most `width`.
#[inline]
fn available(text: Ids, position: usize, width: usize, pad: u32) -> usize {
    (1..=width.min(position))
        .find(|&b| text.get(position - b) == pad)
        .map_or(width.min(position), |b| b - 1)
}

/// The key of the target at `position`: its token, then its W values in feature order.
fn key(text: Ids, position: usize, width: usize, order: &[usize], pad: u32) -> Vec<u32> {
    let available = available(text, position, width, pad);
    let mut key = Vec::with_capacity(width + 1);
    key.push(text.get(position));
    key.extend(
        order
            .iter()
            .map(|&f| back(width, f, available).map_or(pad, |b| text.get(position - b))),
    );
    key
}

/// Builds the index of `text` (blocks each preceded by `pad`) for contexts of `width` matched in
/// feature `order`. An error when the text has 2^32 positions or more.
pub fn build(text: Ids, width: usize, order: &[usize], pad: u32) -> Result<PackedPositions> {
    if text.len() > u32::MAX as usize {
        return Err(Error::InvalidInput(
            "the provenance index holds at most 2^32 positions".into(),
        ));
    }
    // First by a head: the token and the first two values in feature order (most keys differ
    // there), the position in the low 32 bits; then each run of equal heads by the whole key.
    let head = |p: usize| -> u128 {
        let available = available(text, p, width, pad);
        let value = |f: &usize| back(width, *f, available).map_or(pad, |b| text.get(p - b));
        let first = order.first().map_or(0, value);
        let second = order.get(1).map_or(0, value);
        (text.get(p) as u128) << 96 | (first as u128) << 64 | (second as u128) << 32 | p as u128
    };
    let mut heads: Vec<u128> = (0..text.len())
        .into_par_iter()
        .filter(|&p| text.get(p) != pad)
        .map(head)
        .collect();
    heads.par_sort_unstable();
    heads
        .par_chunk_by_mut(|a, b| a >> 32 == b >> 32)
        .filter(|run| run.len() > 1)
        .for_each(|run| {
            run.sort_by_cached_key(|&h| (key(text, h as u32 as usize, width, order, pad), h as u32))
        });
    let positions: Vec<u32> = heads.iter().map(|&h| h as u32).collect();
    Ok(PackedPositions::pack(&positions))
}

/// The range of the index whose positions hold `token` after a context whose first `values.len()`
/// values in feature order are `values`.
pub fn find(
    positions: PositionsView,
    text: Ids,
    width: usize,
    order: &[usize],
    pad: u32,
    token: u32,
    values: &[u32],
) -> Range<usize> {
    let mut query = Vec::with_capacity(values.len() + 1);
    query.push(token);
    query.extend_from_slice(values);
    let cmp = |i: usize| compare_prefix(text, positions.get(i), width, order, pad, &query);
    let lower = partition_point(positions.len, |i| cmp(i) == Ordering::Less);
    let upper = partition_point(positions.len, |i| cmp(i) != Ordering::Greater);
    lower..upper.max(lower)
}

/// The first index in 0..len where `before` is false (it must be true, then false).
fn partition_point(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = low + (high - low) / 2;
        if before(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of random ids below 5 (pad 9), each preceded by the pad.
    fn text(seed: u64) -> Vec<u32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut text = Vec::new();
        for _ in 0..40 {
            text.push(9);
            text.extend((0..rng.usize(1..30)).map(|_| rng.u32(0..5)));
        }
        text
    }

    #[test]
    fn packs_and_reads_every_width() {
        for largest in [0u32, 1, 2, 1000, (1 << 24) - 1, u32::MAX] {
            let positions: Vec<u32> = (0..200u32).map(|i| largest - largest / 200 * i).collect();
            let packed = PackedPositions::pack(&positions);
            let view = PositionsView::new(packed.bits as u64, packed.len as u64, &packed.words);
            let view = view.unwrap();
            assert!((0..200).all(|i| view.get(i) == positions[i] as usize));
        }
        assert!(PositionsView::new(8, 3, &[0]).is_err());
    }

    #[test]
    fn validate_refuses_positions_out_of_order_or_missing() {
        let text = text(4);
        let ids = Ids::U32(&text);
        let order = [2, 1, 0];
        let packed = build(ids, 3, &order, 9).unwrap();
        let check = |packed: &PackedPositions| {
            let positions =
                PositionsView::new(packed.bits as u64, packed.len as u64, &packed.words);
            let view = ProvenanceView {
                positions: positions.unwrap(),
                origins: &[],
            };
            view.validate(ids, 9, 3, &order)
        };
        assert_eq!(check(&packed), Ok(()));
        let mut positions: Vec<u32> = (0..packed.len)
            .map(|i| packed.view().get(i) as u32)
            .collect();
        positions.reverse();
        assert!(check(&PackedPositions::pack(&positions)).is_err());
        positions.reverse();
        positions[1] = positions[0];
        assert!(check(&PackedPositions::pack(&positions)).is_err());
    }

    #[test]
    fn find_returns_exactly_the_matching_positions() {
        for (seed, width, order) in [
            (1, 3, vec![2, 1, 0]),
            (2, 4, vec![3, 1, 2, 0]),
            (3, 1, vec![0]),
        ] {
            let text = text(seed);
            let ids = Ids::U32(&text);
            let packed = build(ids, width, &order, 9).unwrap();
            let view = packed.view();
            let targets: Vec<usize> = (0..text.len()).filter(|&p| text[p] != 9).collect();
            assert_eq!(view.len, targets.len());
            let mut seen: Vec<usize> = (0..view.len).map(|i| view.get(i)).collect();
            seen.sort_unstable();
            assert_eq!(seen, targets); // each position once
                                       // keys hold the training windows' values (instances::windows, the IGTree's instances)
            let tokens: Vec<u32> = text.iter().copied().filter(|&t| t != 9).collect();
            let lengths: Vec<u64> = text
                .split(|&t| t == 9)
                .skip(1)
                .map(|b| b.len() as u64)
                .collect();
            let (contexts, classes) =
                crate::instances::windows(&tokens, &lengths, width, 9).unwrap();
            for (j, &p) in targets.iter().enumerate() {
                let row = &contexts[j * width..(j + 1) * width];
                let expected: Vec<u32> = std::iter::once(classes[j])
                    .chain(order.iter().map(|&f| row[f]))
                    .collect();
                assert_eq!(key(ids, p, width, &order, 9), expected);
            }
            for &p in &targets {
                let full = key(ids, p, width, &order, 9);
                for depth in 0..=width {
                    let range = find(view, ids, width, &order, 9, full[0], &full[1..=depth]);
                    let mut found: Vec<usize> = range.map(|i| view.get(i)).collect();
                    found.sort_unstable();
                    let expected: Vec<usize> = targets
                        .iter()
                        .copied()
                        .filter(|&q| key(ids, q, width, &order, 9)[..=depth] == full[..=depth])
                        .collect();
                    assert_eq!(found, expected, "seed {seed} position {p} depth {depth}");
                }
            }
        }
    }
}
