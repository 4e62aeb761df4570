//! `memlm._core`: a thin PyO3 layer over memlm-core. Numpy arrays in and out; batch work and file
//! work run with the GIL released.

use std::path::PathBuf;

use memlm_core::build::BuildOptions;
use memlm_core::columns;
use memlm_core::format::Check;
use memlm_core::model::UNKNOWN;
use memlm_core::shard::{self, Shard};
use memlm_core::{
    Algorithm, Error, IdVec, Ids, KnnOptions, Model, TokenWindows, TrainSpec, Vocabulary, Vote,
    Weighting,
};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyException, PyOSError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pyo3::create_exception!(
    _core,
    MemlmError,
    PyException,
    "Base class of memlm's errors."
);
pyo3::create_exception!(
    _core,
    ModelFormatError,
    MemlmError,
    "A model file is missing parts, truncated, corrupt, foreign or of another format version."
);
pyo3::create_exception!(
    _core,
    InstanceFileError,
    MemlmError,
    "A TiMBL column-format instance file could not be read."
);

fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { .. } => PyOSError::new_err(message),
        Error::BadModel { .. } => ModelFormatError::new_err(message),
        Error::BadInstanceFile { .. } => InstanceFileError::new_err(message),
        Error::InvalidInput(_) => MemlmError::new_err(message),
    }
}

fn parse_weighting(name: &str) -> PyResult<Weighting> {
    match name {
        "gain_ratio" | "gr" => Ok(Weighting::GainRatio),
        "info_gain" | "ig" => Ok(Weighting::InfoGain),
        other => Err(MemlmError::new_err(format!(
            "unknown weighting {other:?}: use 'gain_ratio' or 'info_gain'"
        ))),
    }
}

fn parse_algorithm(name: &str) -> PyResult<Algorithm> {
    match name {
        "igtree" => Ok(Algorithm::IgTree),
        "tribl2" => Ok(Algorithm::Tribl2),
        "ib1" => Ok(Algorithm::Ib1),
        other => Err(MemlmError::new_err(format!(
            "unknown algorithm {other:?}: use 'igtree', 'tribl2' or 'ib1'"
        ))),
    }
}

fn knn_options(k: usize, vote: &str, decay: f64) -> PyResult<KnnOptions> {
    if k == 0 {
        return Err(MemlmError::new_err("k must be at least 1"));
    }
    let vote = match vote {
        "majority" => Vote::Majority,
        "inverse_distance" => Vote::InverseDistance,
        "exponential_decay" if decay > 0.0 => Vote::ExponentialDecay { alpha: decay },
        "exponential_decay" => return Err(MemlmError::new_err("decay must be positive")),
        other => {
            return Err(MemlmError::new_err(format!(
                "unknown vote {other:?}: use 'majority', 'inverse_distance' or 'exponential_decay'"
            )))
        }
    };
    Ok(KnnOptions { k, vote })
}

fn weighting_name(w: Weighting) -> &'static str {
    match w {
        Weighting::GainRatio => "gain_ratio",
        Weighting::InfoGain => "info_gain",
    }
}

/// Each vote's share of `total`.
fn shares(votes: &[f64], total: f64) -> Vec<f64> {
    votes.iter().map(|v| v / total).collect()
}

/// A uint16 or uint32 numpy array of token ids, copied at that width.
fn token_ids(tokens: &Bound<'_, PyAny>) -> PyResult<IdVec> {
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

/// Windows over a uint16 or uint32 array of token ids (kept at that width in the core).
fn token_windows(
    tokens: &Bound<'_, PyAny>,
    block_lengths: &[u64],
    width: usize,
    pad: u32,
) -> PyResult<TokenWindows> {
    let lengths: Vec<usize> = block_lengths.iter().map(|&l| l as usize).collect();
    TokenWindows::from_ids(token_ids(tokens)?, &lengths, width, pad).map_err(to_py)
}

/// Token ids and block lengths as numpy arrays.
fn token_arrays<'py>(
    py: Python<'py>,
    (tokens, block_lengths): (Ids<'_>, &[u64]),
) -> (Bound<'py, PyAny>, Bound<'py, PyArray1<u64>>) {
    let ids = match tokens {
        Ids::U16(v) => PyArray1::from_slice(py, v).into_any(),
        Ids::U32(v) => PyArray1::from_slice(py, v).into_any(),
    };
    (ids, PyArray1::from_slice(py, block_lengths))
}

/// A trained model (IGTree), built in memory or memory-mapped from a file.
#[pyclass(frozen, name = "CoreModel", module = "memlm._core")]
struct CoreModel {
    inner: Model,
}

impl CoreModel {
    /// The last `width` ids of `prefix`, left-padded with the padding id.
    fn window(&self, prefix: &[u32]) -> Vec<u32> {
        let width = self.inner.width();
        let tail = &prefix[prefix.len().saturating_sub(width)..];
        let mut context = vec![self.inner.params().pad; width - tail.len()];
        context.extend_from_slice(tail);
        context
    }
}

#[pymethods]
impl CoreModel {
    /// Trains on blocks of token ids (concatenated uint16 or uint32 `tokens`, split by
    /// `block_lengths`). `shard_memory` caps the trie construction's working memory (in shards spilled
    /// to `temp_dir`); `progress(phase, done, total)` is called as the build advances.
    #[staticmethod]
    #[pyo3(signature = (tokens, block_lengths, width, vocab_size, weighting, tokenizer, metadata, instance_base, shard_memory=None, temp_dir=None, progress=None, keep_tokens=false))]
    #[allow(clippy::too_many_arguments)]
    fn train_tokens(
        py: Python<'_>,
        tokens: &Bound<'_, PyAny>,
        block_lengths: PyReadonlyArray1<u64>,
        width: usize,
        vocab_size: u32,
        weighting: &str,
        tokenizer: &[u8],
        metadata: &str,
        instance_base: bool,
        shard_memory: Option<u64>,
        temp_dir: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
        keep_tokens: bool,
    ) -> PyResult<Self> {
        let weighting = parse_weighting(weighting)?;
        let block_lengths = block_lengths.as_slice()?;
        let windows = token_windows(tokens, block_lengths, width, vocab_size)?;
        let kept = if keep_tokens {
            Some(token_ids(tokens)?)
        } else {
            None
        };
        let report = |phase: &str, done: u64, total: u64| {
            if let Some(callback) = &progress {
                Python::attach(|py| {
                    if let Err(e) = callback.call1(py, (phase, done, total)) {
                        e.print(py);
                    }
                });
            }
        };
        let spec = TrainSpec {
            vocabulary: Vocabulary::TokenIds { size: vocab_size },
            weighting,
            tokenizer,
            metadata,
            instance_base,
            build: BuildOptions {
                shard_memory,
                temp_dir: temp_dir.as_deref(),
                progress: Some(&report),
            },
            keep_tokens: kept.as_ref().map(|ids| (ids, block_lengths)),
        };
        let inner = py.detach(|| Model::train(windows, spec)).map_err(to_py)?;
        Ok(CoreModel { inner })
    }

    /// Trains on a TiMBL column-format instance file; the model keeps the file's symbol table.
    #[staticmethod]
    fn train_instance_file(
        py: Python<'_>,
        path: PathBuf,
        weighting: &str,
        metadata: &str,
        instance_base: bool,
    ) -> PyResult<Self> {
        let weighting = parse_weighting(weighting)?;
        let inner = py
            .detach(|| {
                let file = columns::read_training_file(&path)?;
                let spec = TrainSpec {
                    vocabulary: Vocabulary::Symbols(file.symbols),
                    weighting,
                    tokenizer: &[],
                    metadata,
                    instance_base,
                    build: Default::default(),
                    keep_tokens: None,
                };
                Model::train(file.table, spec)
            })
            .map_err(to_py)?;
        Ok(CoreModel { inner })
    }

    /// Memory-maps a model file: checks its header and small sections (constant time), or, with
    /// `verify`, every checksum and structural invariant.
    #[staticmethod]
    #[pyo3(signature = (path, verify=false))]
    fn load(py: Python<'_>, path: PathBuf, verify: bool) -> PyResult<Self> {
        let check = if verify { Check::Full } else { Check::Header };
        let inner = py.detach(|| Model::load(&path, check)).map_err(to_py)?;
        Ok(CoreModel { inner })
    }

    /// Verifies every checksum and structural invariant of the model (ModelFormatError if broken).
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.verify())
            .map_err(ModelFormatError::new_err)
    }

    /// The training text's (token ids, block lengths) when the model kept them, else None.
    fn training_tokens<'py>(
        &self,
        py: Python<'py>,
    ) -> Option<(Bound<'py, PyAny>, Bound<'py, PyArray1<u64>>)> {
        self.inner.training_tokens().map(|t| token_arrays(py, t))
    }

    /// Writes the model file atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save(&path)).map_err(to_py)
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
    /// Bytes of the model file per part (labels, children, distributions, ...).
    #[getter]
    fn size_breakdown(&self) -> Vec<(&'static str, usize)> {
        self.inner.size_breakdown()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.as_bytes().len()
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
        weighting_name(self.inner.params().weighting)
    }
    #[getter]
    fn feature_order(&self) -> Vec<usize> {
        self.inner.feature_order().to_vec()
    }
    #[getter]
    fn gain_ratio(&self) -> Vec<f64> {
        self.inner.feature_weights().gain_ratio
    }
    #[getter]
    fn info_gain(&self) -> Vec<f64> {
        self.inner.feature_weights().info_gain
    }
    #[getter]
    fn metadata(&self) -> &str {
        self.inner.metadata()
    }
    #[getter]
    fn tokenizer_blob<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.tokenizer_blob())
    }

    /// The string of a symbol id.
    fn symbol(&self, id: u32) -> PyResult<String> {
        if id >= self.inner.params().n_symbols {
            return Err(MemlmError::new_err(format!(
                "symbol id {id} is out of range"
            )));
        }
        Ok(self.inner.symbol(id).into_owned())
    }

    /// The id of a symbol string, or None when the model does not know it.
    fn symbol_id(&self, symbol: &str) -> Option<u32> {
        Some(self.inner.symbol_id(symbol)).filter(|&id| id != UNKNOWN)
    }

    /// Prediction after `prefix` (ids; only the last `width` count, a shorter prefix is left-padded as a
    /// block start): (classes, votes, probabilities, depth, distance) with the `top_k` best classes
    /// (all when 0); a probability is a vote's share of all votes. IGTree votes are the matched node's
    /// counts.
    #[pyo3(signature = (prefix, top_k, algorithm="igtree", k=1, vote="majority", decay=1.0))]
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn predict(
        &self,
        py: Python<'_>,
        prefix: Vec<u32>,
        top_k: usize,
        algorithm: &str,
        k: usize,
        vote: &str,
        decay: f64,
    ) -> PyResult<(Vec<u32>, Vec<f64>, Vec<f64>, u32, f64)> {
        let context = self.window(&prefix);
        let algorithm = parse_algorithm(algorithm)?;
        let take = if top_k == 0 { usize::MAX } else { top_k };
        if algorithm == Algorithm::IgTree {
            let m = self.inner.igtree_match(&context).map_err(to_py)?;
            let trie = self.inner.trie();
            let (classes, counts): (Vec<u32>, Vec<f64>) = trie
                .distribution(m.node)
                .take(take)
                .map(|(c, n)| (c, n as f64))
                .unzip();
            let shares = shares(&counts, trie.total(m.node) as f64);
            return Ok((
                classes,
                counts,
                shares,
                m.depth,
                self.inner.distance(m.depth),
            ));
        }
        let options = knn_options(k, vote, decay)?;
        let found = py
            .detach(|| self.inner.classify(&context, algorithm, options))
            .map_err(to_py)?;
        let total = found.votes.iter().map(|v| v.1).sum();
        let (classes, votes): (Vec<u32>, Vec<f64>) = found.votes.into_iter().take(take).unzip();
        let shares = shares(&votes, total);
        Ok((classes, votes, shares, found.depth, found.distance))
    }

    /// IGTree predictions for a batch of contexts (an n x width array), on all cores without the
    /// GIL. Returns classes (n x top_k, -1 where a node has fewer classes), counts (n x top_k),
    /// matched depths (n) and distances (n).
    #[pyo3(signature = (contexts, top_k, algorithm="igtree", k=1, vote="majority", decay=1.0))]
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn predict_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
        top_k: usize,
        algorithm: &str,
        k: usize,
        vote: &str,
        decay: f64,
    ) -> PyResult<(
        Bound<'py, PyArray2<i64>>,
        Bound<'py, PyArray2<f64>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<f64>>,
    )> {
        let rows = contexts.shape()[0];
        let flat = contexts.as_slice()?;
        if contexts.shape()[1] != self.inner.width() {
            return Err(MemlmError::new_err(format!(
                "contexts have {} columns but the model's width is {}",
                contexts.shape()[1],
                self.inner.width()
            )));
        }
        let algorithm = parse_algorithm(algorithm)?;
        let options = knn_options(k, vote, decay)?;
        let width = top_k.max(1);
        let (classes, counts, depth, distance) = py
            .detach(|| -> memlm_core::Result<_> {
                let mut classes = vec![-1i64; rows * width];
                let mut counts = vec![0f64; rows * width];
                let mut depth = Vec::with_capacity(rows);
                let mut distance = Vec::with_capacity(rows);
                if algorithm == Algorithm::IgTree {
                    let trie = self.inner.trie();
                    for (r, m) in self.inner.igtree_match_batch(flat)?.iter().enumerate() {
                        for (j, (c, n)) in trie.distribution(m.node).take(width).enumerate() {
                            classes[r * width + j] = c as i64;
                            counts[r * width + j] = n as f64;
                        }
                        depth.push(m.depth);
                        distance.push(self.inner.distance(m.depth));
                    }
                } else {
                    let found = self.inner.classify_batch(flat, algorithm, options)?;
                    for (r, n) in found.iter().enumerate() {
                        for (j, &(c, v)) in n.votes.iter().take(width).enumerate() {
                            classes[r * width + j] = c as i64;
                            counts[r * width + j] = v;
                        }
                        depth.push(n.depth);
                        distance.push(n.distance);
                    }
                }
                Ok((classes, counts, depth, distance))
            })
            .map_err(to_py)?;
        let shape = [rows, width];
        Ok((
            classes.into_pyarray(py).reshape(shape)?,
            counts.into_pyarray(py).reshape(shape)?,
            depth.into_pyarray(py),
            distance.into_pyarray(py),
        ))
    }

    /// Log10 probabilities of `targets` (n) after `contexts` (n x width) under the scoring
    /// distribution, and the matched depths; on all cores without the GIL.
    #[allow(clippy::type_complexity)]
    fn score_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
        targets: PyReadonlyArray1<'py, u32>,
    ) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<u32>>)> {
        if contexts.shape()[1] != self.inner.width() {
            return Err(MemlmError::new_err(format!(
                "contexts have {} columns but the model's width is {}",
                contexts.shape()[1],
                self.inner.width()
            )));
        }
        let (flat, targets) = (contexts.as_slice()?, targets.as_slice()?);
        let scored = py
            .detach(|| self.inner.score_batch(flat, targets))
            .map_err(to_py)?;
        let log10: Vec<f64> = scored.iter().map(|s| s.0.log10()).collect();
        let depth: Vec<u32> = scored.iter().map(|s| s.1).collect();
        Ok((log10.into_pyarray(py), depth.into_pyarray(py)))
    }

    /// The whole scoring distribution after one context: a probability per symbol id.
    fn scoring_distribution<'py>(
        &self,
        py: Python<'py>,
        context: Vec<u32>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let p = self.inner.scoring_distribution(&context).map_err(to_py)?;
        Ok(p.into_pyarray(py))
    }

    /// Training frequency of every class.
    #[getter]
    fn class_counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.inner.class_counts().to_vec().into_pyarray(py)
    }

    /// Classifies a TiMBL column file; writes TiMBL's `-o` layout to `output` (stdout when None).
    #[pyo3(signature = (path, output=None, distribution=false, algorithm="igtree", k=1, vote="majority", decay=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn classify_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        output: Option<PathBuf>,
        distribution: bool,
        algorithm: &str,
        k: usize,
        vote: &str,
        decay: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let algorithm = parse_algorithm(algorithm)?;
        let options = knn_options(k, vote, decay)?;
        let totals = py
            .detach(|| match &output {
                Some(out) => {
                    let mut file = memlm_core::atomic::AtomicFile::create(out)?;
                    let totals = columns::classify_file(
                        &self.inner,
                        &path,
                        file.writer(),
                        distribution,
                        algorithm,
                        options,
                    )?;
                    file.commit()?;
                    Ok(totals)
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = std::io::BufWriter::new(stdout.lock());
                    columns::classify_file(
                        &self.inner,
                        &path,
                        &mut lock,
                        distribution,
                        algorithm,
                        options,
                    )
                }
            })
            .map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("instances", totals.instances)?;
        d.set_item("correct", totals.correct)?;
        d.set_item("has_classes", totals.has_classes)?;
        d.set_item("seconds", totals.seconds)?;
        Ok(d)
    }
}

/// Writes token blocks as a TiMBL column-format instance file (atomically).
#[pyfunction]
fn write_instances(
    py: Python<'_>,
    tokens: &Bound<'_, PyAny>,
    block_lengths: PyReadonlyArray1<u64>,
    width: usize,
    pad: u32,
    path: PathBuf,
) -> PyResult<()> {
    let windows = token_windows(tokens, block_lengths.as_slice()?, width, pad)?;
    py.detach(|| columns::write_instance_file(&windows, &path))
        .map_err(to_py)
}

/// Writes tokenised text (uint16 or uint32 ids, block lengths) as a shard file, atomically.
#[pyfunction]
fn write_shard(
    py: Python<'_>,
    path: PathBuf,
    tokens: &Bound<'_, PyAny>,
    block_lengths: PyReadonlyArray1<u64>,
    vocab_size: u32,
    tokenizer: &[u8],
    metadata: &str,
) -> PyResult<()> {
    let ids = token_ids(tokens)?;
    let lengths = block_lengths.as_slice()?;
    py.detach(|| shard::write_shard(&path, &ids, lengths, vocab_size, tokenizer, metadata))
        .map_err(to_py)
}

/// Opens and verifies a shard file: (token ids, block lengths, vocabulary size, tokenizer blob, metadata).
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
)> {
    let opened = py.detach(|| Shard::open(&path)).map_err(to_py)?;
    let (tokens, lengths) = token_arrays(py, opened.tokens());
    Ok((
        tokens,
        lengths,
        opened.vocab_size(),
        PyBytes::new(py, opened.tokenizer_blob()),
        opened.metadata().to_string(),
    ))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CoreModel>()?;
    m.add_function(wrap_pyfunction!(write_instances, m)?)?;
    m.add_function(wrap_pyfunction!(write_shard, m)?)?;
    m.add_function(wrap_pyfunction!(read_shard, m)?)?;
    m.add("MemlmError", m.py().get_type::<MemlmError>())?;
    m.add("ModelFormatError", m.py().get_type::<ModelFormatError>())?;
    m.add("InstanceFileError", m.py().get_type::<InstanceFileError>())?;
    m.add("FORMAT_VERSION", memlm_core::format::FORMAT_VERSION)?;
    Ok(())
}
