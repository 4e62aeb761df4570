//! `memlm._core`: the PyO3 binding of memlm-core. It only converts: numpy arrays and sequences to
//! slices, names to the core's enums (parsed by the core), the core's errors to exception classes.
//! Batch and file work run with the GIL released.

mod bpe;
mod cluster;
mod convert;
mod errors;
mod generation;
mod model;
mod options;
mod progress;

use std::path::PathBuf;

use memlm_core::format::{Kind, ALL_SECTIONS};
use memlm_core::instances::check_width;
use memlm_core::shard::{self, Shard};
use memlm_core::{columns, Algorithm, TokenWindows, Vote, Weighting};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyTuple};

use convert::{token_arrays, token_ids, Int};
use errors::{to_py, InstanceFileError, MemlmError, ModelFormatError};
use progress::run_write;

/// Writes token blocks as a TiMBL column-format instance file (atomically; a Ctrl-C during the
/// write abandons it and raises KeyboardInterrupt).
#[pyfunction]
fn write_instances(
    py: Python<'_>,
    tokens: &Bound<'_, PyAny>,
    block_lengths: PyReadonlyArray1<u64>,
    width: Int,
    pad: u32,
    path: PathBuf,
) -> PyResult<()> {
    // A negative width says so (not an OverflowError).
    let width = check_width(width.0).map_err(to_py)?;
    let windows = TokenWindows::new(token_ids(tokens)?, block_lengths.as_slice()?, width, pad)
        .map_err(to_py)?;
    run_write(py, |stop| {
        columns::write_instance_file(&windows, &path, Some(stop))
    })
}

/// Writes tokenised text (uint16 or uint32 ids, block lengths, and the blocks' origins when given)
/// as a shard file, atomically (a Ctrl-C during the write abandons it and raises KeyboardInterrupt);
/// `scratch`: a build's intermediate file, not synced.
#[pyfunction]
#[pyo3(signature = (path, tokens, block_lengths, vocab_size, tokenizer, metadata, origins=None, scratch=false))]
#[allow(clippy::too_many_arguments)]
fn write_shard(
    py: Python<'_>,
    path: PathBuf,
    tokens: &Bound<'_, PyAny>,
    block_lengths: PyReadonlyArray1<u64>,
    vocab_size: u32,
    tokenizer: &[u8],
    metadata: &str,
    origins: Option<&[u8]>,
    scratch: bool,
) -> PyResult<()> {
    let ids = token_ids(tokens)?;
    let lengths = block_lengths.as_slice()?;
    run_write(py, |stop| {
        shard::write_shard(
            &path,
            &ids,
            lengths,
            vocab_size,
            tokenizer,
            metadata,
            origins,
            Some(stop),
            scratch,
        )
    })
}

/// Writes bytes to a file atomically (a Ctrl-C during the write abandons it and raises
/// KeyboardInterrupt).
#[pyfunction]
fn write_atomic(py: Python<'_>, path: PathBuf, data: &[u8]) -> PyResult<()> {
    run_write(py, |stop| {
        memlm_core::atomic::write_atomic(&path, data, Some(stop))
    })
}

/// Opens and verifies a shard file: (token ids, block lengths, vocabulary size, tokenizer blob, metadata,
/// the blocks' origins or None).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_shard<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(
    Bound<'py, PyAny>,
    Bound<'py, PyArray1<u64>>,
    u32,
    Bound<'py, PyBytes>,
    String,
    Option<Bound<'py, PyBytes>>,
)> {
    let opened = py.detach(|| Shard::open(&path)).map_err(to_py)?;
    let (tokens, lengths) = token_arrays(py, opened.tokens());
    Ok((
        tokens,
        lengths,
        opened.vocab_size(),
        PyBytes::new(py, opened.tokenizer_blob()),
        opened.metadata().to_string(),
        opened.origins().map(|o| PyBytes::new(py, o)),
    ))
}

/// The text of shards one after the other (`memlm_core::shard::concatenated`, what a cluster
/// build's workers read too): (token ids, block lengths, and, with `origins`, each shard's origins
/// section or None; else an empty list).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_shards<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    origins: bool,
) -> PyResult<(
    Bound<'py, PyAny>,
    Bound<'py, PyArray1<u64>>,
    Vec<Option<Bound<'py, PyBytes>>>,
)> {
    let text = py
        .detach(|| shard::concatenated(&paths, origins))
        .map_err(to_py)?;
    let (tokens, lengths) = token_arrays(py, (text.tokens.view(), &text.block_lengths));
    let origins = text
        .origins
        .iter()
        .map(|o| o.as_deref().map(|o| PyBytes::new(py, o)))
        .collect();
    Ok((tokens, lengths, origins))
}

/// The kind of a memlm file by its magic number ("model", "shard", or None for neither), reading
/// only its first eight bytes; anything but a regular file raises OSError without blocking (a FIFO
/// with no writer included).
#[pyfunction]
fn file_kind(py: Python<'_>, path: PathBuf) -> PyResult<Option<&'static str>> {
    let kind = py.detach(|| Kind::of_file(&path)).map_err(to_py)?;
    Ok(kind.map(|kind| match kind {
        Kind::Model => "model",
        Kind::Shard => "shard",
    }))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::CoreModel>()?;
    m.add_class::<bpe::AsciiBpe>()?;
    m.add_class::<options::Query>()?;
    m.add_class::<options::Answer>()?;
    m.add_class::<options::TrainOptions>()?;
    m.add_class::<options::Sampling>()?;
    m.add_class::<generation::Generation>()?;
    m.add_function(wrap_pyfunction!(write_instances, m)?)?;
    m.add_function(wrap_pyfunction!(write_shard, m)?)?;
    m.add_function(wrap_pyfunction!(write_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(read_shard, m)?)?;
    m.add_function(wrap_pyfunction!(read_shards, m)?)?;
    m.add_function(wrap_pyfunction!(file_kind, m)?)?;
    cluster::register(m)?;
    m.add("MemlmError", m.py().get_type::<MemlmError>())?;
    m.add("ModelFormatError", m.py().get_type::<ModelFormatError>())?;
    m.add("InstanceFileError", m.py().get_type::<InstanceFileError>())?;
    m.add("FORMAT_VERSION", memlm_core::format::FORMAT_VERSION)?;
    m.add("MAX_WIDTH", memlm_core::instances::MAX_WIDTH)?;
    m.add("UNKNOWN", memlm_core::UNKNOWN)?;
    m.add("ALGORITHMS", PyTuple::new(m.py(), Algorithm::NAMES)?)?;
    m.add("WEIGHTINGS", PyTuple::new(m.py(), Weighting::NAMES)?)?;
    m.add("VOTES", PyTuple::new(m.py(), Vote::NAMES)?)?;
    let sections = PyDict::new(m.py());
    for section in ALL_SECTIONS {
        sections.set_item(section as u32, format!("{section:?}"))?;
    }
    m.add("SECTIONS", sections)?;
    let bulk = ALL_SECTIONS
        .iter()
        .filter(|s| s.is_bulk())
        .map(|&s| s as u32);
    m.add("BULK_SECTIONS", PyFrozenSet::new(m.py(), bulk)?)?;
    Ok(())
}
