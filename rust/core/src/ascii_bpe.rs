//! GPT-2's byte-level BPE for ASCII text, without a regex engine: the tokeniser's hot path.
//!
//! Rules (what [`AsciiBpe::encode`] guarantees):
//! - Pieces: GPT-2's pre-tokenizer regex
//!   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, read on ASCII text
//!   where `\p{L}` is `A-Z a-z`, `\p{N}` is `0-9` and `\s` is Unicode's White_Space (TAB, LF, VT, FF,
//!   CR, space). `piece_end` takes the alternatives in order, leftmost first, as a backtracking regex
//!   engine does: the contractions (lower case only) are pieces only where a piece starts (`?'s` is
//!   `?'` then `s`); a space joins the run of one class that follows it; a run of white space followed
//!   by something else leaves its last character to a piece of its own, or to what follows when that
//!   character is a space (`a \tb` is `a`, ` `, `\t`, `b`; `a  b` is `a`, ` `, ` b`).
//! - Tokens of a piece: tiktoken's rule on ranks (a token's rank is its index in the table given to
//!   [`AsciiBpe::new`]): the piece's rank when the piece is a token whole; else, from its bytes, merge
//!   the adjacent pair whose concatenation has the lowest rank (the leftmost of equals) until no
//!   adjacent pair is a token. A heap of candidate pairs keeps a long piece (a run of 60,000 `=`)
//!   at n log n.
//! - Text that is not ASCII is refused: its classes need Unicode's tables, so callers tokenise it
//!   otherwise (memlm's Python side uses tiktoken, whose ids these equal on ASCII).
//! - [`AsciiBpe::encode_texts`] gives each text's ranks in input order; pieces merged once are
//!   remembered within one task's texts only (nothing is kept between calls).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3Builder;

use crate::error::{Error, Result};

/// Texts per rayon task in [`AsciiBpe::encode_texts`]: enough that a task's piece cache pays.
const TEXTS_PER_TASK: usize = 64;

/// GPT-2's byte-level BPE on ASCII text, given the tokens' bytes in rank order.
pub struct AsciiBpe {
    /// Ranks of the tokens of at most [`SHORT`] bytes, under [`short_key`] (no pointer to follow).
    short: HashMap<u64, u32, BuildHasherDefault<FoldedMultiply>>,
    /// Ranks of the longer tokens.
    long: HashMap<Box<[u8]>, u32, Xxh3Builder>,
    /// The rank of each ASCII byte as a one-byte token.
    byte_ranks: [u32; 128],
}

impl AsciiBpe {
    /// The encoder of a token table (token `i`'s bytes at index `i`); an error unless every ASCII
    /// byte is a token, the tokens are distinct and fewer than 2^32.
    pub fn new(tokens: Vec<Vec<u8>>) -> Result<Self> {
        if tokens.len() >= u32::MAX as usize {
            return Err(Error::InvalidInput(
                "too many tokens for a BPE table".into(),
            ));
        }
        let mut bpe = AsciiBpe {
            short: HashMap::default(),
            long: HashMap::with_hasher(Xxh3Builder::new()),
            byte_ranks: [0; 128],
        };
        for (rank, token) in tokens.into_iter().enumerate() {
            let repeated = if token.len() <= SHORT {
                bpe.short.insert(short_key(&token), rank as u32).is_some()
            } else {
                bpe.long
                    .insert(token.into_boxed_slice(), rank as u32)
                    .is_some()
            };
            if repeated {
                return Err(Error::InvalidInput(format!(
                    "BPE token {rank} repeats an earlier token's bytes"
                )));
            }
        }
        for byte in 0u8..128 {
            bpe.byte_ranks[byte as usize] = bpe.rank(&[byte]).ok_or_else(|| {
                Error::InvalidInput(format!("the BPE table has no token for byte {byte}"))
            })?;
        }
        Ok(bpe)
    }

    /// Appends the ranks of `text`'s tokens to `out`; an error (and nothing appended) unless `text`
    /// is ASCII.
    pub fn encode(&self, text: &[u8], out: &mut Vec<u32>) -> Result<()> {
        if !text.is_ascii() {
            return Err(Error::InvalidInput(
                "ASCII BPE was given text that is not ASCII".into(),
            ));
        }
        Encoder::new(self).encode(text, out);
        Ok(())
    }

    /// Every text's ranks concatenated, and how many each has (texts spread over rayon's threads when
    /// `parallel`, else all on the calling thread); an error unless every text is ASCII.
    pub fn encode_texts(&self, texts: &[&[u8]], parallel: bool) -> Result<(Vec<u32>, Vec<u64>)> {
        if let Some(index) = texts.iter().position(|text| !text.is_ascii()) {
            return Err(Error::InvalidInput(format!(
                "ASCII BPE was given text {index}, which is not ASCII"
            )));
        }
        let task = |chunk: &[&[u8]]| {
            let mut encoder = Encoder::new(self);
            let mut ranks = Vec::with_capacity(chunk.iter().map(|t| t.len() / 4).sum());
            let mut counts = Vec::with_capacity(chunk.len());
            for text in chunk {
                let before = ranks.len();
                encoder.encode(text, &mut ranks);
                counts.push((ranks.len() - before) as u64);
            }
            (ranks, counts)
        };
        let parts: Vec<(Vec<u32>, Vec<u64>)> = match parallel {
            true => texts.par_chunks(TEXTS_PER_TASK).map(task).collect(),
            false => texts.chunks(TEXTS_PER_TASK).map(task).collect(),
        };
        let mut ranks = Vec::with_capacity(parts.iter().map(|(r, _)| r.len()).sum());
        let mut counts = Vec::with_capacity(texts.len());
        for (part_ranks, part_counts) in parts {
            ranks.extend_from_slice(&part_ranks);
            counts.extend_from_slice(&part_counts);
        }
        Ok((ranks, counts))
    }

    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        if bytes.len() <= SHORT {
            self.short.get(&short_key(bytes)).copied()
        } else {
            self.long.get(bytes).copied()
        }
    }
}

/// The longest token kept under a [`short_key`].
const SHORT: usize = 7;

/// A token of at most [`SHORT`] bytes as one number: its bytes, then its length in the top byte.
fn short_key(bytes: &[u8]) -> u64 {
    let mut key = [0u8; 8];
    key[..bytes.len()].copy_from_slice(bytes);
    key[7] = bytes.len() as u8;
    u64::from_le_bytes(key)
}

/// A hasher of one `u64` (a [`short_key`]): the two halves of its 128-bit product with an odd
/// constant, xored, so that every bit of the key reaches the low bits the table indexes by.
#[derive(Default)]
struct FoldedMultiply(u64);

impl Hasher for FoldedMultiply {
    /// Only for the trait: the table hashes `u64` keys, through [`Hasher::write_u64`].
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        let product = u128::from(key) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One thread's encoding state: the pieces it has merged (a piece repeats often within a text) and
/// the merge's scratch space.
struct Encoder<'a, 'b> {
    bpe: &'a AsciiBpe,
    /// Pieces merged so far, each to its ranks' range in `merged`.
    cache: HashMap<&'b [u8], Range<usize>, Xxh3Builder>,
    merged: Vec<u32>,
    parts: Vec<Part>,
    heap: BinaryHeap<Reverse<(u32, usize)>>,
}

/// A token of a piece being merged: its bytes are `start..end` of the piece; `prev` and `next` are
/// the parts before and after it ([`NO_PART`] for none), `alive` false once merged into the part
/// before it.
#[derive(Clone, Copy)]
struct Part {
    start: usize,
    end: usize,
    prev: usize,
    next: usize,
    alive: bool,
}

/// No part (before the first, after the last).
const NO_PART: usize = usize::MAX;

impl<'a, 'b> Encoder<'a, 'b> {
    fn new(bpe: &'a AsciiBpe) -> Self {
        Encoder {
            bpe,
            cache: HashMap::with_hasher(Xxh3Builder::new()),
            merged: Vec::new(),
            parts: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    fn encode(&mut self, text: &'b [u8], out: &mut Vec<u32>) {
        let mut start = 0;
        while start < text.len() {
            let end = piece_end(text, start);
            self.piece(&text[start..end], out);
            start = end;
        }
    }

    fn piece(&mut self, piece: &'b [u8], out: &mut Vec<u32>) {
        if let [byte] = piece {
            out.push(self.bpe.byte_ranks[*byte as usize]);
        } else if let Some(rank) = self.bpe.rank(piece) {
            out.push(rank);
        } else if let Some(range) = self.cache.get(piece) {
            out.extend_from_slice(&self.merged[range.clone()]);
        } else {
            let first = self.merged.len();
            self.merge(piece);
            out.extend_from_slice(&self.merged[first..]);
            self.cache.insert(piece, first..self.merged.len());
        }
    }

    /// Merges `piece`'s bytes by tiktoken's rule, appending the ranks to `merged`.
    fn merge(&mut self, piece: &[u8]) {
        let n = piece.len();
        self.parts.clear();
        self.parts.extend((0..n).map(|i| Part {
            start: i,
            end: i + 1,
            prev: if i == 0 { NO_PART } else { i - 1 },
            next: if i + 1 == n { NO_PART } else { i + 1 },
            alive: true,
        }));
        self.heap.clear();
        for i in 0..n.saturating_sub(1) {
            if let Some(rank) = self.bpe.rank(&piece[i..i + 2]) {
                self.heap.push(Reverse((rank, i)));
            }
        }
        // An entry (rank, i) is current while part i is alive and still ends where its pair with the
        // next part has that rank: stale entries are skipped as they come up.
        while let Some(Reverse((rank, i))) = self.heap.pop() {
            let left = self.parts[i];
            if !left.alive || left.next == NO_PART {
                continue;
            }
            let right = self.parts[left.next];
            if self.bpe.rank(&piece[left.start..right.end]) != Some(rank) {
                continue;
            }
            self.parts[left.next].alive = false;
            self.parts[i].end = right.end;
            self.parts[i].next = right.next;
            if right.next != NO_PART {
                self.parts[right.next].prev = i;
                if let Some(r) = self
                    .bpe
                    .rank(&piece[left.start..self.parts[right.next].end])
                {
                    self.heap.push(Reverse((r, i)));
                }
            }
            if left.prev != NO_PART {
                let before = self.parts[left.prev];
                if let Some(r) = self.bpe.rank(&piece[before.start..right.end]) {
                    self.heap.push(Reverse((r, left.prev)));
                }
            }
        }
        let mut i = 0;
        while i != NO_PART {
            let part = self.parts[i];
            let rank = self.bpe.rank(&piece[part.start..part.end]);
            self.merged
                .push(rank.expect("every merged part is a token: bytes are, merges make tokens"));
            i = part.next;
        }
    }
}

/// The end of the piece that starts at `i` in ASCII `text` (see the module doc).
fn piece_end(text: &[u8], i: usize) -> usize {
    let n = text.len();
    if text[i] == b'\'' {
        let next = |k: usize| text.get(i + k).copied();
        match (next(1), next(2)) {
            (Some(b's' | b't' | b'm' | b'd'), _) => return i + 2,
            (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => return i + 3,
            _ => {}
        }
    }
    let start = match text.get(i + 1) {
        Some(&next) if text[i] == b' ' && class(next) != Class::Space => i + 1,
        _ => i,
    };
    let of_run = class(text[start]);
    let mut end = start + 1;
    while end < n && class(text[end]) == of_run {
        end += 1;
    }
    if of_run == Class::Space && end < n && end - i > 1 {
        end - 1 // `\s+(?!\S)`: the last white space goes with what follows
    } else {
        end
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(byte: u8) -> Class {
    match byte {
        b'A'..=b'Z' | b'a'..=b'z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b'\t'..=b'\r' | b' ' => Class::Space,
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let end = piece_end(text.as_bytes(), start);
            out.push(&text[start..end]);
            start = end;
        }
        out
    }

    #[test]
    fn pieces_follow_gpt2s_regex() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("it's we'll"), ["it", "'s", " we", "'ll"]);
        assert_eq!(pieces("'x ''s ?'s"), ["'", "x", " ''", "s", " ?'", "s"]);
        assert_eq!(pieces("a  b"), ["a", " ", " b"]);
        assert_eq!(pieces("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pieces("a \nb"), ["a", " ", "\n", "b"]);
        assert_eq!(pieces("a\tb"), ["a", "\t", "b"]);
        assert_eq!(pieces("x   "), ["x", "   "]);
        assert_eq!(pieces(" 42x!?"), [" 42", "x", "!?"]);
        assert_eq!(pieces("'RE 're'v"), ["'", "RE", " '", "re", "'", "v"]);
    }

    /// Tokens: the bytes 0-127, then "ab", "abc", "bc", "aa".
    fn table() -> AsciiBpe {
        let mut tokens: Vec<Vec<u8>> = (0u8..128).map(|b| vec![b]).collect();
        for t in ["ab", "abc", "bc", "aa"] {
            tokens.push(t.as_bytes().to_vec());
        }
        AsciiBpe::new(tokens).unwrap()
    }

    #[test]
    fn merges_lowest_rank_leftmost_first() {
        let bpe = table();
        let mut out = Vec::new();
        bpe.encode(b"abcd", &mut out).unwrap();
        assert_eq!(out, [129, b'd' as u32]); // "ab" (128) before "bc" (130), then "ab" + "c"
        out.clear();
        bpe.encode(b"xbcd", &mut out).unwrap();
        assert_eq!(out, [b'x' as u32, 130, b'd' as u32]);
        out.clear();
        bpe.encode(b"aaaaa", &mut out).unwrap();
        assert_eq!(out, [131, 131, b'a' as u32]);
        out.clear();
        bpe.encode(b"abc", &mut out).unwrap(); // whole piece a token
        assert_eq!(out, [129]);
    }

    #[test]
    fn long_runs_and_refusals() {
        let bpe = table();
        let mut out = Vec::new();
        bpe.encode("a".repeat(100_001).as_bytes(), &mut out)
            .unwrap();
        assert_eq!(out.len(), 50_001);
        assert!(bpe.encode("é".as_bytes(), &mut out).is_err());
        assert!(AsciiBpe::new(vec![vec![0]]).is_err());
        let (ranks, counts) = bpe.encode_texts(&[b"ab", b"", b"x y"], true).unwrap();
        let sequential = bpe.encode_texts(&[b"ab", b"", b"x y"], false).unwrap();
        assert_eq!(sequential, (ranks.clone(), counts.clone()));
        assert_eq!(counts, [1, 0, 3]); // " y" is no token: two bytes
        assert_eq!(ranks, [128, b'x' as u32, b' ' as u32, b'y' as u32]);
    }
}
