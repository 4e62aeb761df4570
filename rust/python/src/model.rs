//! `CoreModel`: a trained model. Every method converts its arguments, calls the core (batch and
//! file work with the GIL released) and converts the result.

use std::path::PathBuf;

use memlm_core::format::Check;
use memlm_core::ids::Ids;
use memlm_core::partition_sizes::partition_sizes;
use memlm_core::{provenance, training, Model};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::cluster::{KneserNeyStatistics, Reduction};
use crate::convert::{prefix_tail, rows, token_arrays, token_ids, Int};
use crate::errors::{to_py, MemlmError};
use crate::generation::Generation;
use crate::options::{Answer, Query, Sampling, TrainOptions};
use crate::progress::{run_build, run_write};

/// A trained model, built in memory, or memory-mapped or read from a file.
#[pyclass(frozen, name = "CoreModel", module = "memlm._core")]
pub struct CoreModel {
    pub inner: Model,
}

/// A numpy array made here.
type Array1<'py, T> = Bound<'py, PyArray1<T>>;
type Array2<'py, T> = Bound<'py, PyArray2<T>>;

/// answer_batch's arrays: classes, votes, totals (None when not asked for), depths, distances.
type Batch<'py> = (
    Array2<'py, i64>,
    Array2<'py, f64>,
    Option<Array1<'py, f64>>,
    Array1<'py, u32>,
    Array1<'py, f64>,
);

/// Runs a call of the core, its error turned into the Python exception of its kind. A panic (a bug:
/// the core never panics on any model bytes or arguments, which the fuzz target and the
/// corruption tests check) becomes `MemlmError`, not pyo3's PanicException (a BaseException that
/// `except Exception` misses). Defence in depth, and free when nothing panics.
pub(crate) fn guard<T>(call: impl FnOnce() -> memlm_core::Result<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .map_err(panic_error)?
        .map_err(to_py)
}

/// The `MemlmError` a panic of the core (its payload) is raised as.
pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    MemlmError::new_err(format!(
        "internal error in memlm's core ({message}); the model may be damaged: \
         `memlm verify` checks it (please report this)"
    ))
}

impl CoreModel {
    /// Checks the IGTree's checksums with the GIL released, if not done yet (the first query's
    /// pass over the trie; later queries that need no detaching then stay cheap).
    fn check_igtree(&self, py: Python<'_>) -> PyResult<()> {
        if !self.inner.file().igtree_checked() {
            py.detach(|| guard(|| self.inner.checked_trie().map(drop)))?;
        }
        Ok(())
    }

    /// A 2-D array of contexts as a row-major slice, its columns checked against the width.
    fn contexts<'a>(&self, array: &'a PyReadonlyArray2<'_, u32>) -> PyResult<&'a [u32]> {
        let (ids, columns) = rows(array)?;
        self.inner.check_columns(columns).map_err(to_py)?;
        Ok(ids)
    }
}

#[pymethods]
impl CoreModel {
    /// Trains on blocks of token ids (concatenated uint16 or uint32 `tokens`, split by
    /// `block_lengths`); `partition_memory` caps the trie build's working memory (partitions
    /// spilled to the options' `temp_dir`); `progress(phase, done, total)` hears how far it got, at
    /// least every 100 ms; an exception it raises (or Ctrl-C, also with progress=None) stops the
    /// build and is raised again. A cluster build passes `reduced`: its statistics and the files its
    /// workers spilled the partitions to (IGTree's, instance base's), which are assembled, and the
    /// `kneser_ney` statistics it computed meanwhile (checked to be these tokens'; taken once every
    /// other argument is converted).
    #[staticmethod]
    #[pyo3(signature = (tokens, block_lengths, vocab_size, tokenizer, metadata, options, partition_memory=None, progress=None, origins=None, reduced=None, kneser_ney=None))]
    #[allow(clippy::too_many_arguments)]
    fn train_tokens(
        py: Python<'_>,
        tokens: &Bound<'_, PyAny>,
        block_lengths: PyReadonlyArray1<u64>,
        vocab_size: u32,
        tokenizer: &[u8],
        metadata: &str,
        options: &TrainOptions,
        partition_memory: Option<Int>,
        progress: Option<Py<PyAny>>,
        origins: Option<&[u8]>,
        reduced: Option<(Bound<'_, Reduction>, Vec<PathBuf>, Vec<PathBuf>)>,
        kneser_ney: Option<Bound<'_, KneserNeyStatistics>>,
    ) -> PyResult<Self> {
        let partition_memory = partition_memory
            .map(|m| training::check_partition_memory(m.0))
            .transpose()
            .map_err(to_py)?;
        let tokens = token_ids(tokens)?;
        let block_lengths = block_lengths.as_slice()?;
        let reduced = reduced.as_ref().map(|(reduction, igtree, instance_base)| {
            let spilled = training::Spilled {
                igtree,
                instance_base,
            };
            (&reduction.get().inner, spilled)
        });
        let kneser_ney = kneser_ney.map(|k| k.get().take()).transpose()?;
        let inner = run_build(py, progress, |report| {
            training::train_tokens(
                tokens,
                block_lengths,
                vocab_size,
                tokenizer,
                metadata,
                &options.inner,
                partition_memory,
                Some(report),
                origins,
                reduced,
                kneser_ney,
            )
        })?;
        Ok(CoreModel { inner })
    }

    /// Trains on a TiMBL column-format instance file; the model keeps the file's symbol table.
    /// `progress` as for `train_tokens`.
    #[staticmethod]
    #[pyo3(signature = (path, metadata, options, progress=None))]
    fn train_instance_file(
        py: Python<'_>,
        path: PathBuf,
        metadata: &str,
        options: &TrainOptions,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let inner = run_build(py, progress, |report| {
            training::train_instance_file(&path, metadata, &options.inner, Some(report))
        })?;
        Ok(CoreModel { inner })
    }

    /// Opens a model file: memory-mapped (`mmap`; the file must then not be truncated or rewritten
    /// in place while the model is open) or read into memory. Checks its header and small sections
    /// (constant time; each trie's checksums at the first query that reads it), or, with `verify`,
    /// every checksum and structural invariant. Anything but a regular file is refused (OSError).
    #[staticmethod]
    #[pyo3(signature = (path, verify=false, mmap=true))]
    fn load(py: Python<'_>, path: PathBuf, verify: bool, mmap: bool) -> PyResult<Self> {
        let check = if verify { Check::Full } else { Check::Header };
        let inner = py.detach(|| {
            guard(|| match mmap {
                true => Model::load(&path, check),
                false => Model::read(&path, check),
            })
        })?;
        Ok(CoreModel { inner })
    }

    /// Verifies every checksum and structural invariant of the model (ModelFormatError if broken).
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| guard(|| self.inner.verify()))
    }

    /// The bytes under each range of nearest-token ids `[0, ends[0])`, `[ends[0], ends[1])`, ...:
    /// (the IGTree's per range, the Kneser-Ney statistics' per range, the rest of the file).
    fn partition_sizes(
        &self,
        py: Python<'_>,
        ends: Vec<u32>,
    ) -> PyResult<(Vec<u64>, Vec<u64>, u64)> {
        let sizes = py.detach(|| guard(|| partition_sizes(&self.inner, &ends)))?;
        Ok((sizes.igtree, sizes.kneser_ney, sizes.shared))
    }

    /// Writes the model file atomically; a Ctrl-C during the write abandons it (the file at
    /// `path` stays as it was) and raises KeyboardInterrupt.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        run_write(py, |stop| self.inner.file().save(&path, Some(stop)))
    }

    /// The training text's (token ids, block lengths) when the model kept them, else None
    /// (checksums and ids checked at the first call: ModelFormatError when damaged).
    fn training_tokens<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Array1<'py, u64>)>> {
        let tokens = py.detach(|| guard(|| self.inner.file().checked_training_tokens()))?;
        Ok(tokens.map(|t| token_arrays(py, t)))
    }

    /// Whether the model has a provenance index (`memlm train --provenance`).
    #[getter]
    fn has_provenance(&self) -> bool {
        self.inner.file().has_provenance()
    }

    /// The origins of the training blocks (opaque bytes, as training stored them) when the model has
    /// a provenance index, else None (checksums verified at the first call: ModelFormatError).
    fn provenance_origins<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let index = py.detach(|| guard(|| provenance::Index::of(self.inner.file())))?;
        Ok(index.map(|index| PyBytes::new(py, index.origins())))
    }

    /// (how many, up to `count` of their positions in `training_text`) of the training tokens
    /// `token` whose context matches the context after `prefix` to `depth` values in feature order;
    /// None without a provenance index.
    fn occurrences(
        &self,
        py: Python<'_>,
        token: u32,
        prefix: &Bound<'_, PyAny>,
        depth: usize,
        count: usize,
    ) -> PyResult<Option<(usize, Vec<usize>)>> {
        let tail = prefix_tail(prefix, self.inner.width(), self.inner.params().n_symbols)?;
        let context = self.inner.context(tail.as_slice());
        let found = py.detach(|| {
            guard(|| match provenance::Index::of(self.inner.file())? {
                Some(index) => index.occurrences(token, &context, depth, count).map(Some),
                None => Ok(None),
            })
        })?;
        Ok(found)
    }

    /// The training text the scoring statistics keep (blocks each preceded by the padding id), a
    /// copy; None for a model trained from an instance file.
    fn training_text<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let kn = py.detach(|| guard(|| self.inner.file().checked_kneser_ney()))?;
        Ok(kn.map(|kn| match kn.text {
            Ids::U16(v) => v.to_vec().into_pyarray(py).into_any(),
            Ids::U32(v) => v.to_vec().into_pyarray(py).into_any(),
        }))
    }

    #[getter]
    fn width(&self) -> usize {
        self.inner.width()
    }
    #[getter]
    fn n_symbols(&self) -> u32 {
        self.inner.params().n_symbols
    }
    #[getter]
    fn pad(&self) -> u32 {
        self.inner.params().pad
    }
    #[getter]
    fn n_instances(&self) -> u64 {
        self.inner.params().n_instances
    }
    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.trie().node_count()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.file().as_bytes().len()
    }
    /// Bytes of the model file per part (labels, children, distributions, ...).
    #[getter]
    fn size_breakdown(&self) -> Vec<(&'static str, usize)> {
        self.inner.file().size_breakdown()
    }
    #[getter]
    fn has_instance_base(&self) -> bool {
        self.inner.instance_base().is_some()
    }
    #[getter]
    fn token_ids(&self) -> bool {
        self.inner.params().token_ids
    }
    #[getter]
    fn weighting(&self) -> &'static str {
        self.inner.params().weighting.name()
    }
    #[getter]
    fn feature_order(&self) -> Vec<usize> {
        self.inner.feature_order().to_vec()
    }
    #[getter]
    fn gain_ratio(&self) -> Vec<f64> {
        self.inner.file().feature_weights().gain_ratio
    }
    #[getter]
    fn info_gain(&self) -> Vec<f64> {
        self.inner.file().feature_weights().info_gain
    }
    #[getter]
    fn metadata(&self) -> &str {
        self.inner.file().metadata()
    }
    #[getter]
    fn tokenizer_blob<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.file().tokenizer_blob())
    }
    /// Training frequency of every class.
    #[getter]
    fn class_counts<'py>(&self, py: Python<'py>) -> Array1<'py, u64> {
        PyArray1::from_slice(py, self.inner.file().class_counts())
    }

    /// The string of a symbol id.
    fn symbol(&self, id: u32) -> PyResult<String> {
        guard(|| self.inner.symbols().get(id).map(|s| s.into_owned()))
    }

    /// The id of a symbol string, or UNKNOWN.
    fn symbol_id(&self, symbol: &str) -> u32 {
        self.inner.symbols().id(symbol)
    }

    /// The answer after `prefix` (ids of any length: the last W count, a shorter one is padded).
    fn answer(&self, py: Python<'_>, prefix: &Bound<'_, PyAny>, query: &Query) -> PyResult<Answer> {
        let tail = prefix_tail(prefix, self.inner.width(), self.inner.params().n_symbols)?;
        let context = self.inner.context(tail.as_slice());
        let query = &query.inner;
        let answer = if query.algorithm().needs_instance_base() {
            py.detach(|| guard(|| self.inner.answer(&context, query)))
        } else {
            self.check_igtree(py)?;
            guard(|| self.inner.answer(&context, query))
        };
        Ok(answer?.into())
    }

    /// Answers for an (n, W) array on all cores: classes (n, max(top_k, 1); -1 where fewer),
    /// votes, totals (n; None without `totals`, which spares decoding the rest of each IGTree
    /// node's classes), depths (n), distances (n).
    #[pyo3(signature = (contexts, query, totals=true))]
    fn answer_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
        query: &Query,
        totals: bool,
    ) -> PyResult<Batch<'py>> {
        let flat = self.contexts(&contexts)?;
        let batch =
            py.detach(|| guard(|| self.inner.answer_batch_with(flat, &query.inner, totals)))?;
        let shape = [batch.depths.len(), batch.columns];
        Ok((
            batch.classes.into_pyarray(py).reshape(shape)?,
            batch.votes.into_pyarray(py).reshape(shape)?,
            totals.then(|| batch.totals.into_pyarray(py)),
            batch.depths.into_pyarray(py),
            batch.distances.into_pyarray(py),
        ))
    }

    /// (contexts (n, W), targets (n)) of every token of every block, each block left-padded.
    fn windows<'py>(
        &self,
        py: Python<'py>,
        tokens: PyReadonlyArray1<'py, u32>,
        block_lengths: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<(Array2<'py, u32>, Array1<'py, u32>)> {
        let (tokens, lengths) = (tokens.as_slice()?, block_lengths.as_slice()?);
        let (contexts, targets) = py.detach(|| guard(|| self.inner.windows(tokens, lengths)))?;
        let shape = [targets.len(), self.inner.width()];
        Ok((
            contexts.into_pyarray(py).reshape(shape)?,
            targets.into_pyarray(py),
        ))
    }

    /// log10 probabilities of the targets under the scoring distribution, matched depths, OOV flags.
    fn score_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
        targets: PyReadonlyArray1<'py, u32>,
    ) -> PyResult<(Array1<'py, f64>, Array1<'py, u32>, Array1<'py, bool>)> {
        let flat = self.contexts(&contexts)?;
        let targets = targets.as_slice()?;
        let scores = py.detach(|| guard(|| self.inner.score_batch(flat, targets)))?;
        Ok((
            scores.log10.into_pyarray(py),
            scores.depths.into_pyarray(py),
            scores.oov.into_pyarray(py),
        ))
    }

    /// `score_batch` for the windows of one document, in order, with the document cache weighted by
    /// `weights` (the model's probabilities on all cores, the cache on one).
    fn score_document<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
        targets: PyReadonlyArray1<'py, u32>,
        weights: [f64; 4],
    ) -> PyResult<(Array1<'py, f64>, Array1<'py, u32>, Array1<'py, bool>)> {
        let flat = self.contexts(&contexts)?;
        let targets = targets.as_slice()?;
        let scores = py.detach(|| guard(|| self.inner.score_document(flat, targets, &weights)))?;
        Ok((
            scores.log10.into_pyarray(py),
            scores.depths.into_pyarray(py),
            scores.oov.into_pyarray(py),
        ))
    }

    /// The document cache's weights fitted at training time (None: the model has none).
    #[getter]
    fn cache_weights(&self) -> Option<[f64; 4]> {
        self.inner.cache_weights()
    }

    /// The scoring distribution's most probable id after each context (None: the model has no
    /// Kneser-Ney statistics).
    fn most_probable_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
    ) -> PyResult<Option<Array1<'py, u32>>> {
        let flat = self.contexts(&contexts)?;
        let ids = py.detach(|| guard(|| self.inner.most_probable_batch(flat)))?;
        Ok(ids.map(|ids| ids.into_pyarray(py)))
    }

    /// The nearest neighbours behind the k-NN answer of `query` after `prefix`: up to `most`, nearest
    /// first, each (distance, its W values in column order with -1 where it stands for several
    /// instances that differ there, its (class, count) pairs).
    #[allow(clippy::type_complexity)]
    fn neighbours(
        &self,
        py: Python<'_>,
        prefix: &Bound<'_, PyAny>,
        query: &Query,
        most: usize,
    ) -> PyResult<Vec<(f64, Vec<i64>, Vec<(u32, u64)>)>> {
        let tail = prefix_tail(prefix, self.inner.width(), self.inner.params().n_symbols)?;
        let context = self.inner.context(tail.as_slice());
        let found = py.detach(|| guard(|| self.inner.neighbours(&context, &query.inner, most)))?;
        Ok(found
            .into_iter()
            .map(|n| {
                let values = n.values.iter().map(|v| v.map_or(-1, i64::from)).collect();
                (n.distance, values, n.counts)
            })
            .collect())
    }

    /// The scoring distribution after `prefix`: one probability per symbol id, summing to 1.
    fn probabilities<'py>(
        &self,
        py: Python<'py>,
        prefix: &Bound<'py, PyAny>,
    ) -> PyResult<Array1<'py, f64>> {
        let tail = prefix_tail(prefix, self.inner.width(), self.inner.params().n_symbols)?;
        let context = self.inner.context(tail.as_slice());
        self.check_igtree(py)?;
        let p = guard(|| self.inner.probabilities(&context))?;
        Ok(p.into_pyarray(py))
    }

    /// A generation of up to `max_new_tokens` after `prompt`. `query` gives the classifier (algorithm,
    /// k, vote, decay); its `top_k` is not used: `sampling` decides how many classes each step keeps
    /// (1 when greedy, `sampling.top_k` when sampling).
    #[pyo3(signature = (prompt, max_new_tokens, query, sampling, seed=None))]
    fn generation(
        slf: &Bound<'_, Self>,
        prompt: &Bound<'_, PyAny>,
        max_new_tokens: usize,
        query: &Query,
        sampling: &Sampling,
        seed: Option<u64>,
    ) -> PyResult<Generation> {
        let model = &slf.get().inner;
        let tail = prefix_tail(prompt, model.width(), model.params().n_symbols)?;
        let state = guard(|| {
            memlm_core::Generation::new(
                model,
                tail.as_slice(),
                max_new_tokens,
                &query.inner,
                sampling.inner,
                seed,
            )
        })?;
        Ok(Generation {
            model: slf.clone().unbind(),
            state,
        })
    }

    /// A generation of up to `max_new_tokens` after `prompt` (all its ids, uint32) from the scoring
    /// distribution, with the document cache weighted by `cache_weights` when given.
    #[pyo3(signature = (prompt, max_new_tokens, sampling, seed=None, cache_weights=None))]
    fn scoring_generation(
        slf: &Bound<'_, Self>,
        prompt: PyReadonlyArray1<'_, u32>,
        max_new_tokens: usize,
        sampling: &Sampling,
        seed: Option<u64>,
        cache_weights: Option<[f64; 4]>,
    ) -> PyResult<Generation> {
        let model = &slf.get().inner;
        let prompt = prompt.as_slice()?;
        let state = slf.py().detach(|| {
            guard(|| {
                memlm_core::Generation::from_scoring(
                    model,
                    prompt,
                    max_new_tokens,
                    sampling.inner,
                    seed,
                    cache_weights,
                )
            })
        })?;
        Ok(Generation {
            model: slf.clone().unbind(),
            state,
        })
    }

    /// Classifies a TiMBL column file; writes TiMBL's `-o` layout to `output` (stdout when None;
    /// a Ctrl-C before the file is committed abandons it and raises KeyboardInterrupt).
    #[pyo3(signature = (path, output, distribution, query))]
    fn classify_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        output: Option<PathBuf>,
        distribution: bool,
        query: &Query,
    ) -> PyResult<Bound<'py, PyDict>> {
        let totals = run_write(py, |stop| {
            memlm_core::columns::classify_file(
                &self.inner,
                &path,
                output.as_deref(),
                distribution,
                &query.inner,
                Some(stop),
            )
        })?;
        let d = PyDict::new(py);
        d.set_item("instances", totals.instances)?;
        d.set_item("correct", totals.correct)?;
        d.set_item("has_classes", totals.has_classes)?;
        d.set_item("seconds", totals.seconds)?;
        Ok(d)
    }
}
