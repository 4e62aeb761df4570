//! Symbol ids stored in the narrowest integer type that holds them: u16 for vocabularies of up to
//! 65,536 ids (GPT-2's 50,257), u32 otherwise. Arc labels, tail values and token ids all use it.

use std::ops::Range;

/// Symbol ids (arc labels, tail values, token ids) in the narrowest integer type that holds them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdVec {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl IdVec {
    /// An empty array for a symbol space of `n_symbols` ids.
    pub fn for_symbols(n_symbols: u32) -> Self {
        if n_symbols <= 1 << 16 {
            IdVec::U16(Vec::new())
        } else {
            IdVec::U32(Vec::new())
        }
    }

    /// Appends an id (which must fit the type chosen by [`IdVec::for_symbols`]).
    pub fn push(&mut self, id: u32) {
        match self {
            IdVec::U16(v) => v.push(id as u16),
            IdVec::U32(v) => v.push(id),
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.view().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at position `i`.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        self.view().get(i)
    }

    /// Borrowed view.
    #[inline]
    pub fn view(&self) -> Ids<'_> {
        match self {
            IdVec::U16(v) => Ids::U16(v),
            IdVec::U32(v) => Ids::U32(v),
        }
    }
}

/// Borrowed ids.
#[derive(Clone, Copy, Debug)]
pub enum Ids<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl Ids<'_> {
    /// Number of ids.
    pub fn len(&self) -> usize {
        match self {
            Ids::U16(v) => v.len(),
            Ids::U32(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at position `i`.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Ids::U16(v) => v[i] as u32,
            Ids::U32(v) => v[i],
        }
    }

    /// The id at position `i`, or None past the end.
    #[inline]
    pub fn try_get(&self, i: usize) -> Option<u32> {
        match self {
            Ids::U16(v) => v.get(i).map(|&t| t as u32),
            Ids::U32(v) => v.get(i).copied(),
        }
    }

    /// Position of `value` among the ids of `range` (sorted), if present (None too when `range`
    /// lies outside the ids).
    #[inline]
    pub fn find(&self, range: Range<usize>, value: u32) -> Option<usize> {
        match self {
            Ids::U16(v) => {
                let value = u16::try_from(value).ok()?;
                v.get(range)?.binary_search(&value).ok()
            }
            Ids::U32(v) => v.get(range)?.binary_search(&value).ok(),
        }
    }

    /// Whether the ids of `range` ascend strictly (false when `range` lies outside the ids).
    pub fn strictly_ascending(&self, range: Range<usize>) -> bool {
        match self {
            Ids::U16(v) => v
                .get(range)
                .is_some_and(|v| v.windows(2).all(|w| w[0] < w[1])),
            Ids::U32(v) => v
                .get(range)
                .is_some_and(|v| v.windows(2).all(|w| w[0] < w[1])),
        }
    }

    /// The largest id, if any.
    pub fn max(&self) -> Option<u32> {
        match self {
            Ids::U16(v) => v.iter().max().map(|&t| t as u32),
            Ids::U32(v) => v.iter().max().copied(),
        }
    }
}
