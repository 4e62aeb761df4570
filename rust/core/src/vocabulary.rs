//! Symbols: what the ids of a model stand for, the padding id, the unknown id, and the symbol table
//! of models trained from instance files.
//!
//! A token-id model's ids `0..V` are the tokenizer's and the padding id is `V`. An instance-file
//! model numbers the strings of its file in order of first occurrence, with id 0 for the padding
//! symbol `_`. An id no model has, [`UNKNOWN`], stands for a symbol the model never saw: it matches
//! no arc and is never a class.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Symbol id that matches nothing: what an unknown symbol in a query maps to.
pub const UNKNOWN: u32 = u32::MAX;

/// The padding symbol's string (`_`, as OLIFANT writes it).
pub const PAD_SYMBOL: &str = "_";

/// What the symbol ids of a model stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vocabulary {
    /// Token ids `0..size` of a tokenizer; the padding symbol is `size`.
    TokenIds { size: u32 },
    /// Arbitrary strings read from an instance file; id 0 is the padding symbol `_`.
    Symbols(Vec<String>),
}

impl Vocabulary {
    /// Number of symbol ids, padding included.
    pub fn symbol_count(&self) -> usize {
        match self {
            Vocabulary::TokenIds { size } => *size as usize + 1,
            Vocabulary::Symbols(s) => s.len(),
        }
    }

    /// The padding id.
    pub fn pad(&self) -> u32 {
        match self {
            Vocabulary::TokenIds { size } => *size,
            Vocabulary::Symbols(_) => 0,
        }
    }

    /// The symbol table as stored: offsets into the concatenated UTF-8 strings (empty for token ids).
    pub(crate) fn packed(&self) -> (Vec<u32>, Vec<u8>) {
        let Vocabulary::Symbols(symbols) = self else {
            return (Vec::new(), Vec::new());
        };
        let mut offsets = Vec::with_capacity(symbols.len() + 1);
        let mut bytes = Vec::new();
        offsets.push(0);
        for s in symbols {
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(bytes.len() as u32);
        }
        (offsets, bytes)
    }
}

/// The symbols of an opened model: token ids, or a stored symbol table.
#[derive(Debug)]
pub struct Symbols<'a> {
    n_symbols: u32,
    pad: u32,
    /// Instance-file models: offsets into `text` (one more than symbols), and the strings.
    table: Option<(&'a [u32], &'a str)>,
    /// String to id, made at the first look-up by string.
    index: OnceLock<HashMap<String, u32>>,
}

impl<'a> Symbols<'a> {
    /// Token ids below `pad` (= the tokenizer's vocabulary size).
    pub(crate) fn token_ids(n_symbols: u32, pad: u32) -> Self {
        Symbols {
            n_symbols,
            pad,
            table: None,
            index: OnceLock::new(),
        }
    }

    /// A stored symbol table, checked: offsets ascend from 0 to the end of `bytes`, which is UTF-8
    /// cut at character boundaries.
    pub(crate) fn table(
        n_symbols: u32,
        pad: u32,
        offsets: &'a [u32],
        bytes: &'a [u8],
    ) -> std::result::Result<Self, String> {
        if offsets.len() != n_symbols as usize + 1
            || offsets[0] != 0
            || offsets.windows(2).any(|w| w[1] < w[0])
            || *offsets.last().expect("non-empty") as usize != bytes.len()
        {
            return Err("the symbol table is inconsistent".into());
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| "the symbol table is not UTF-8".to_string())?;
        if offsets.iter().any(|&o| !text.is_char_boundary(o as usize)) {
            return Err("the symbol table splits a character".into());
        }
        Ok(Symbols {
            n_symbols,
            pad,
            table: Some((offsets, text)),
            index: OnceLock::new(),
        })
    }

    /// Number of symbol ids, padding included.
    pub fn len(&self) -> u32 {
        self.n_symbols
    }

    /// Whether there are no symbols (never, for a model).
    pub fn is_empty(&self) -> bool {
        self.n_symbols == 0
    }

    /// The padding id.
    pub fn pad(&self) -> u32 {
        self.pad
    }

    /// The string of symbol `id` (a decimal token id, or `_` for padding, in token-id models); an
    /// error when the model has no such id.
    pub fn get(&self, id: u32) -> Result<Cow<'a, str>> {
        if id >= self.n_symbols {
            return Err(Error::outside_vocabulary(id, "the model's", self.n_symbols));
        }
        if id == self.pad {
            return Ok(PAD_SYMBOL.into());
        }
        Ok(match self.table {
            None => id.to_string().into(),
            Some((offsets, text)) => {
                text[offsets[id as usize] as usize..offsets[id as usize + 1] as usize].into()
            }
        })
    }

    /// The id of a symbol string, or [`UNKNOWN`]: `_` is padding; token-id models read decimal ids.
    pub fn id(&self, symbol: &str) -> u32 {
        if symbol == PAD_SYMBOL {
            return self.pad;
        }
        if self.table.is_none() {
            return match symbol.parse::<u32>() {
                Ok(id) if id < self.pad => id,
                _ => UNKNOWN,
            };
        }
        let index = self.index.get_or_init(|| {
            (0..self.n_symbols)
                .map(|id| (self.get(id).expect("in range").into_owned(), id))
                .collect()
        });
        index.get(symbol).copied().unwrap_or(UNKNOWN)
    }
}
