//! Python values to core slices and back.

use memlm_core::instances::MAX_WIDTH;
use memlm_core::{IdVec, Ids};
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyTuple};

use crate::errors::to_py;
use memlm_core::Error;

/// The last ids of a prefix (at most [`MAX_WIDTH`]), on the stack.
pub struct Tail {
    ids: [u32; MAX_WIDTH],
    len: usize,
}

impl Tail {
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len]
    }
}

/// An id of a prefix: an int in [0, 2**32) (numpy integers too). A bool, a negative or larger
/// int, or anything else is MemlmError, never coerced (the core then checks the vocabulary:
/// below `n_symbols`, or the unknown id 2**32 - 1).
#[inline]
fn id_of(item: &Bound<'_, PyAny>, n_symbols: u32) -> PyResult<u32> {
    match item.extract::<u32>() {
        Ok(id) if !item.is_instance_of::<PyBool>() => Ok(id),
        _ => Err(bad_id(item, n_symbols)),
    }
}

/// What is wrong with an id that [`id_of`] refused, in the words of Python's own checks.
#[cold]
fn bad_id(item: &Bound<'_, PyAny>, n_symbols: u32) -> PyErr {
    let repr = item
        .repr()
        .map_or_else(|_| "?".to_string(), |r| r.to_string());
    let kind = item
        .get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string());
    let negative = match item.extract::<i64>() {
        Ok(v) => Some(v < 0),
        Err(_) => item.cast::<PyInt>().ok().and_then(|int| int.lt(0).ok()),
    };
    to_py(match negative {
        _ if item.is_instance_of::<PyBool>() => {
            Error::InvalidInput(format!("ids must be ints, got {repr} (a bool)"))
        }
        Some(true) => Error::InvalidInput(format!(
            "id {repr} is negative (ids are whole numbers from 0)"
        )),
        Some(false) => Error::outside_vocabulary(repr, "the model's", n_symbols),
        None => Error::InvalidInput(format!("ids must be ints, got {repr} (a {kind})")),
    })
}

/// The last `width` ids of a sequence of ints (a list, a tuple, a numpy array or any iterable):
/// only those of a list, tuple or uint32 array are converted, each by [`id_of`] (`n_symbols` says
/// what ids the model has, for the message).
pub fn prefix_tail(prefix: &Bound<'_, PyAny>, width: usize, n_symbols: u32) -> PyResult<Tail> {
    let mut tail = Tail {
        ids: [0; MAX_WIDTH],
        len: 0,
    };
    let width = width.min(MAX_WIDTH);
    let mut fill = |n: usize, item: &dyn Fn(usize) -> PyResult<u32>| -> PyResult<()> {
        let start = n.saturating_sub(width);
        for (slot, i) in tail.ids.iter_mut().zip(start..n) {
            *slot = item(i)?;
        }
        tail.len = n - start;
        Ok(())
    };
    if let Ok(list) = prefix.cast::<PyList>() {
        fill(list.len(), &|i| id_of(&list.get_item(i)?, n_symbols))?;
    } else if let Ok(tuple) = prefix.cast::<PyTuple>() {
        fill(tuple.len(), &|i| id_of(&tuple.get_item(i)?, n_symbols))?;
    } else if let Ok(array) = prefix.extract::<PyReadonlyArray1<u32>>() {
        let ids = array.as_slice()?;
        fill(ids.len(), &|i| Ok(ids[i]))?;
    } else {
        let ids: Vec<u32> = prefix
            .try_iter()?
            .map(|item| id_of(&item?, n_symbols))
            .collect::<PyResult<_>>()?;
        fill(ids.len(), &|i| Ok(ids[i]))?;
    }
    Ok(tail)
}

/// A 2-D uint32 array as a row-major slice and its column count.
pub fn rows<'a>(array: &'a PyReadonlyArray2<'_, u32>) -> PyResult<(&'a [u32], usize)> {
    Ok((array.as_slice()?, array.shape()[1]))
}

/// A uint16 or uint32 numpy array of token ids, copied at that width.
pub fn token_ids(tokens: &Bound<'_, PyAny>) -> PyResult<IdVec> {
    Ok(match tokens.extract::<PyReadonlyArray1<u16>>() {
        Ok(narrow) => IdVec::U16(narrow.as_slice()?.to_vec()),
        Err(_) => IdVec::U32(
            tokens
                .extract::<PyReadonlyArray1<u32>>()?
                .as_slice()?
                .to_vec(),
        ),
    })
}

/// Token ids (at their stored width) and block lengths as numpy arrays.
pub fn token_arrays<'py>(
    py: Python<'py>,
    (tokens, block_lengths): (Ids<'_>, &[u64]),
) -> (Bound<'py, PyAny>, Bound<'py, PyArray1<u64>>) {
    let ids = match tokens {
        Ids::U16(v) => PyArray1::from_slice(py, v).into_any(),
        Ids::U32(v) => PyArray1::from_slice(py, v).into_any(),
    };
    (ids, PyArray1::from_slice(py, block_lengths))
}

/// A Python int as an i64, saturated (so that the core, not an OverflowError, says what range an
/// argument must be in).
pub struct Int(pub i64);

impl<'py> FromPyObject<'_, 'py> for Int {
    type Error = PyErr;
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<i64>() {
            Ok(v) => Ok(Int(v)),
            Err(e) => {
                let int = obj.cast::<PyInt>().map_err(|_| e)?;
                let negative = int.lt(0)?;
                Ok(Int(if negative { i64::MIN } else { i64::MAX }))
            }
        }
    }
}
