//! The steps of a cluster build, which `memlm.cluster` runs on Dask: what its workers compute from
//! the shards in the shared folder (class counts; over `ShardText`, the shards' text read once per
//! worker, the feature weights' terms over a range of values, and a trie partition spilled to a
//! file), how large and which its tasks are, and `Reduction`, what the process that assembles the
//! model adds up. The rules are the core's (`memlm_core::cluster`): each function here converts, then calls
//! the core with the GIL released.

use std::path::PathBuf;
use std::sync::Mutex;

use memlm_core::build::TrieKind;
use memlm_core::classes::ClassCounts;
use memlm_core::cluster::{self, TaskSizes};
use memlm_core::kneser_ney::KneserNey;
use memlm_core::training;
use memlm_core::vocabulary::Vocabulary;
use memlm_core::weights::{GainTerms, ValueTerms};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::convert::{token_ids, Int};
use crate::errors::{to_py, MemlmError};
use crate::model::guard;
use crate::progress::run_build;

type Array<'py, T> = Bound<'py, PyArray1<T>>;
/// Class counts as numpy arrays: instances per symbol, and each symbol's first instance.
type CountArrays<'py> = (Array<'py, u64>, Array<'py, u64>);
type CountsGiven<'py> = (PyReadonlyArray1<'py, u64>, PyReadonlyArray1<'py, u64>);
/// One feature's terms as numpy arrays: values, counts, conditional and split terms.
type TermArrays<'py> = (
    Array<'py, u32>,
    Array<'py, u64>,
    Array<'py, f64>,
    Array<'py, f64>,
);
type TermsGiven<'py> = (
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, u64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
);

fn count_arrays<'py>(py: Python<'py>, counts: &ClassCounts) -> CountArrays<'py> {
    (
        PyArray1::from_slice(py, &counts.counts),
        PyArray1::from_slice(py, &counts.first_seen),
    )
}

fn counts_given((counts, first_seen): &CountsGiven<'_>) -> PyResult<ClassCounts> {
    Ok(ClassCounts {
        counts: counts.as_slice()?.to_vec(),
        first_seen: first_seen.as_slice()?.to_vec(),
    })
}

/// The windows of shards' text at a width (`memlm_core::cluster::ShardText`), read once and kept
/// by a worker for all its tasks on those shards.
#[pyclass(frozen, name = "ShardText", module = "memlm._core")]
pub struct ShardText {
    inner: cluster::ShardText,
}

#[pymethods]
impl ShardText {
    #[new]
    fn new(py: Python<'_>, shards: Vec<PathBuf>, width: Int) -> PyResult<Self> {
        let inner = py.detach(|| guard(|| cluster::ShardText::open(&shards, width.0)))?;
        Ok(ShardText { inner })
    }
}

/// The class counts of token ids of a vocabulary of `vocab_size` ids (its symbols: those and the
/// padding id): (instances per symbol, index of each symbol's first instance or 2**64 - 1).
#[pyfunction]
pub fn class_counts<'py>(
    py: Python<'py>,
    tokens: &Bound<'py, PyAny>,
    vocab_size: u32,
) -> PyResult<CountArrays<'py>> {
    let tokens = token_ids(tokens)?;
    let n_symbols = Vocabulary::TokenIds { size: vocab_size }.symbol_count();
    let counts = py.detach(|| guard(|| ClassCounts::of_tokens(tokens.view(), n_symbols)))?;
    Ok(count_arrays(py, &counts))
}

/// A weighing task: its features `(first, end)` and values `(start, end)`.
type WeighingTask = ((usize, usize), (u32, u32));

/// The weighing tasks (`memlm_core::cluster::weighing_tasks`) of a text of `width` features whose
/// shards have `class_counts` (in corpus order): `((feature, feature + 1), (start, end))` each, the
/// value ranges holding at most `range` instances of the summed class histogram.
#[pyfunction]
pub fn weighing_tasks(
    py: Python<'_>,
    class_counts: Vec<CountsGiven<'_>>,
    width: usize,
    range: u64,
) -> PyResult<Vec<WeighingTask>> {
    let counts = class_counts
        .iter()
        .map(counts_given)
        .collect::<PyResult<Vec<_>>>()?;
    let tasks = py.detach(|| guard(|| cluster::weighing_tasks(counts, width, range)))?;
    Ok(tasks
        .into_iter()
        .map(|(f, v)| ((f.start, f.end), (v.start, v.end)))
        .collect())
}

/// The bytes of corpus a tokenising task reads (`memlm_core::cluster::piece_bytes`): `total_bytes`
/// over `threads` worker threads, about `tasks_per_thread` pieces each, at least 64 KiB.
#[pyfunction]
pub fn piece_bytes(total_bytes: u64, threads: u64, tasks_per_thread: u64) -> u64 {
    cluster::piece_bytes(total_bytes, threads, tasks_per_thread)
}

/// Per feature: the values in `[start, end)` that occur in the text's windows, and per value its
/// instances, P(v) H(C|v) and P(v) log2 P(v) (the terms of the feature weights, in value order),
/// for the `features` `[first, end)`; empty arrays for the others.
#[pyfunction]
pub fn gain_terms<'py>(
    py: Python<'py>,
    text: &ShardText,
    features: (usize, usize),
    values: (u32, u32),
) -> PyResult<Vec<TermArrays<'py>>> {
    let text = &text.inner;
    let terms =
        py.detach(|| guard(|| text.gain_terms(features.0..features.1, values.0..values.1)))?;
    Ok(terms
        .features
        .iter()
        .map(|t| {
            (
                PyArray1::from_slice(py, &t.values),
                PyArray1::from_slice(py, &t.counts),
                PyArray1::from_slice(py, &t.conditional),
                PyArray1::from_slice(py, &t.split),
            )
        })
        .collect())
}

/// Builds the partition of the `trie` ("igtree" or "instance_base") whose first values (in feature
/// `order`) lie in `[start, end)`, over the text's windows with the whole corpus's `class_counts`,
/// and writes it to `path` atomically (`memlm_core::cluster::ShardText::spill_partition`).
#[pyfunction]
pub fn spill_partition(
    py: Python<'_>,
    text: &ShardText,
    order: Vec<usize>,
    class_counts: CountsGiven<'_>,
    trie: &str,
    values: (u32, u32),
    path: PathBuf,
) -> PyResult<()> {
    let kind: TrieKind = trie.parse().map_err(to_py)?;
    let counts = counts_given(&class_counts)?;
    let text = &text.inner;
    py.detach(|| guard(|| text.spill_partition(&order, counts, kind, values.0..values.1, &path)))
}

/// How large a cluster build's tasks are (`memlm_core::cluster::TaskSizes`): (the most instances
/// of a weighing task's range of values, the most instances of a trie partition) for `instances`
/// of `width` features on `threads` worker threads, about `tasks_per_thread` tasks each, with
/// `partition_memory` bytes for a partition (None: no budget).
#[pyfunction]
#[pyo3(signature = (instances, width, threads, tasks_per_thread, partition_memory=None))]
pub fn task_sizes(
    instances: u64,
    width: usize,
    threads: u64,
    tasks_per_thread: u64,
    partition_memory: Option<u64>,
) -> (u64, u64) {
    let sizes = TaskSizes::new(
        instances,
        width,
        threads,
        tasks_per_thread,
        partition_memory,
    );
    (sizes.weigh_range, sizes.partition)
}

/// The Kneser-Ney statistics of token blocks, computed on their own (a cluster build's client
/// computes them while its workers build the tries), for one build to take.
#[pyclass(frozen, name = "KneserNeyStatistics", module = "memlm._core")]
pub struct KneserNeyStatistics {
    inner: Mutex<Option<KneserNey>>,
}

impl KneserNeyStatistics {
    /// The statistics, taken out: an error when a build took them already.
    pub fn take(&self) -> PyResult<KneserNey> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                MemlmError::new_err("these Kneser-Ney statistics went into a model already")
            })
    }
}

#[pymethods]
impl KneserNeyStatistics {
    /// The statistics of the token blocks (uint16 or uint32 `tokens`, split by `block_lengths`) at
    /// `width` over a vocabulary of `vocab_size` ids; `progress(phase, done, total)` as for
    /// `CoreModel.train_tokens` (its exception stops the computation and is raised again).
    #[staticmethod]
    #[pyo3(signature = (tokens, block_lengths, width, vocab_size, progress=None))]
    fn compute(
        py: Python<'_>,
        tokens: &Bound<'_, PyAny>,
        block_lengths: PyReadonlyArray1<u64>,
        width: Int,
        vocab_size: u32,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let tokens = token_ids(tokens)?;
        let block_lengths = block_lengths.as_slice()?;
        let statistics = run_build(py, progress, |report| {
            let width = memlm_core::instances::check_width(width.0)?;
            training::kneser_ney_statistics(
                tokens.view(),
                block_lengths,
                width,
                vocab_size,
                Some(report),
            )
        })?;
        Ok(KneserNeyStatistics {
            inner: Mutex::new(Some(statistics)),
        })
    }
}

/// The statistics of a cluster build, reduced from its workers' results: the class counts of its
/// shards (in corpus order) and the feature weights' terms of its value ranges (in value order).
#[pyclass(frozen, name = "Reduction", module = "memlm._core")]
pub struct Reduction {
    pub inner: training::Reduction,
}

#[pymethods]
impl Reduction {
    #[new]
    fn new(
        py: Python<'_>,
        class_counts: Vec<CountsGiven<'_>>,
        gain_terms: Vec<Vec<TermsGiven<'_>>>,
    ) -> PyResult<Self> {
        let counts = class_counts
            .iter()
            .map(counts_given)
            .collect::<PyResult<Vec<_>>>()?;
        let tasks = gain_terms
            .iter()
            .map(|features| {
                let features = features
                    .iter()
                    .map(|(values, counts, conditional, split)| {
                        Ok(ValueTerms {
                            values: values.as_slice()?.to_vec(),
                            counts: counts.as_slice()?.to_vec(),
                            conditional: conditional.as_slice()?.to_vec(),
                            split: split.as_slice()?.to_vec(),
                        })
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(GainTerms { features })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let inner = py.detach(|| guard(|| training::Reduction::new(counts, &tasks)))?;
        Ok(Reduction { inner })
    }

    /// The whole corpus's class counts: (instances per symbol, each symbol's first instance).
    #[getter]
    fn class_counts<'py>(&self, py: Python<'py>) -> CountArrays<'py> {
        count_arrays(py, &self.inner.class_counts)
    }

    /// The features in the order the IGTree tests them under `weighting`.
    fn order(&self, weighting: &str) -> PyResult<Vec<usize>> {
        Ok(self.inner.order(weighting.parse().map_err(to_py)?))
    }

    /// The partitions `(start, end)` of the `trie` ("igtree" or "instance_base") under `weighting`,
    /// each holding at most `capacity` instances (none when the root is a leaf).
    fn partitions(&self, trie: &str, weighting: &str, capacity: u64) -> PyResult<Vec<(u32, u32)>> {
        let kind: TrieKind = trie.parse().map_err(to_py)?;
        let ranges = self
            .inner
            .partitions(kind, weighting.parse().map_err(to_py)?, capacity);
        Ok(ranges.into_iter().map(|r| (r.start, r.end)).collect())
    }
}

/// Registers this module's functions and class.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Reduction>()?;
    m.add_class::<ShardText>()?;
    m.add_class::<KneserNeyStatistics>()?;
    m.add_function(wrap_pyfunction!(class_counts, m)?)?;
    m.add_function(wrap_pyfunction!(weighing_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(piece_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(gain_terms, m)?)?;
    m.add_function(wrap_pyfunction!(spill_partition, m)?)?;
    m.add_function(wrap_pyfunction!(task_sizes, m)?)?;
    Ok(())
}
