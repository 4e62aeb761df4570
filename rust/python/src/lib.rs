//! `memlm._core`: a thin PyO3 layer over memlm-core. Numpy arrays in and out; batch work and file
//! work run with the GIL released.

use std::path::PathBuf;

use memlm_core::columns;
use memlm_core::model::UNKNOWN;
use memlm_core::{Error, Model, TokenWindows, TrainSpec, Vocabulary, Weighting};
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

fn weighting_name(w: Weighting) -> &'static str {
    match w {
        Weighting::GainRatio => "gain_ratio",
        Weighting::InfoGain => "info_gain",
    }
}

fn token_windows(
    tokens: PyReadonlyArray1<u32>,
    block_lengths: PyReadonlyArray1<u64>,
    width: usize,
    pad: u32,
) -> PyResult<TokenWindows> {
    let lengths: Vec<usize> = block_lengths
        .as_slice()?
        .iter()
        .map(|&l| l as usize)
        .collect();
    TokenWindows::new(tokens.as_slice()?.to_vec(), &lengths, width, pad).map_err(to_py)
}

/// A trained model (IGTree), built in memory or memory-mapped from a file.
#[pyclass(frozen, name = "CoreModel", module = "memlm._core")]
struct CoreModel {
    inner: Model,
}

#[pymethods]
impl CoreModel {
    /// Trains on blocks of token ids (concatenated `tokens`, split by `block_lengths`).
    #[staticmethod]
    #[pyo3(signature = (tokens, block_lengths, width, vocab_size, weighting, tokenizer, metadata))]
    #[allow(clippy::too_many_arguments)]
    fn train_tokens(
        py: Python<'_>,
        tokens: PyReadonlyArray1<u32>,
        block_lengths: PyReadonlyArray1<u64>,
        width: usize,
        vocab_size: u32,
        weighting: &str,
        tokenizer: &[u8],
        metadata: &str,
    ) -> PyResult<Self> {
        let weighting = parse_weighting(weighting)?;
        let windows = token_windows(tokens, block_lengths, width, vocab_size)?;
        let spec = TrainSpec {
            vocabulary: Vocabulary::TokenIds { size: vocab_size },
            weighting,
            tokenizer,
            metadata,
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
                };
                Model::train(file.table, spec)
            })
            .map_err(to_py)?;
        Ok(CoreModel { inner })
    }

    /// Memory-maps and validates a model file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Model::load(&path)).map_err(to_py)?;
        Ok(CoreModel { inner })
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

    /// IGTree prediction for one context of exactly `width` ids: (classes, counts, node total,
    /// depth, distance) with the `top_k` most frequent classes of the matched node (all when 0).
    #[allow(clippy::type_complexity)]
    fn predict(
        &self,
        context: Vec<u32>,
        top_k: usize,
    ) -> PyResult<(Vec<u32>, Vec<u32>, u64, u32, f64)> {
        let m = self.inner.igtree_match(&context).map_err(to_py)?;
        let trie = self.inner.trie();
        let k = if top_k == 0 { usize::MAX } else { top_k };
        let (classes, counts): (Vec<u32>, Vec<u32>) = trie.distribution(m.node).take(k).unzip();
        Ok((
            classes,
            counts,
            trie.total(m.node),
            m.depth,
            self.inner.distance(m.depth),
        ))
    }

    /// IGTree predictions for a batch of contexts (an n x width array), on all cores without the
    /// GIL. Returns classes (n x top_k, -1 where a node has fewer classes), counts (n x top_k),
    /// matched depths (n) and distances (n).
    #[allow(clippy::type_complexity)]
    fn predict_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: PyReadonlyArray2<'py, u32>,
        top_k: usize,
    ) -> PyResult<(
        Bound<'py, PyArray2<i64>>,
        Bound<'py, PyArray2<u32>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<f64>>,
    )> {
        let k = top_k.max(1);
        let rows = contexts.shape()[0];
        let flat = contexts.as_slice()?;
        if contexts.shape()[1] != self.inner.width() {
            return Err(MemlmError::new_err(format!(
                "contexts have {} columns but the model's width is {}",
                contexts.shape()[1],
                self.inner.width()
            )));
        }
        let (classes, counts, depth, distance) = py
            .detach(|| -> memlm_core::Result<_> {
                let matches = self.inner.igtree_match_batch(flat)?;
                let trie = self.inner.trie();
                let mut classes = vec![-1i64; rows * k];
                let mut counts = vec![0u32; rows * k];
                for (r, m) in matches.iter().enumerate() {
                    for (j, (c, n)) in trie.distribution(m.node).take(k).enumerate() {
                        classes[r * k + j] = c as i64;
                        counts[r * k + j] = n;
                    }
                }
                let depth: Vec<u32> = matches.iter().map(|m| m.depth).collect();
                let distance: Vec<f64> = matches
                    .iter()
                    .map(|m| self.inner.distance(m.depth))
                    .collect();
                Ok((classes, counts, depth, distance))
            })
            .map_err(to_py)?;
        let shape = [rows, k];
        Ok((
            classes.into_pyarray(py).reshape(shape)?,
            counts.into_pyarray(py).reshape(shape)?,
            depth.into_pyarray(py),
            distance.into_pyarray(py),
        ))
    }

    /// Classifies a TiMBL column file; writes TiMBL's `-o` layout to `output` (stdout when None).
    #[pyo3(signature = (path, output=None, distribution=false))]
    fn classify_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        output: Option<PathBuf>,
        distribution: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let totals = py
            .detach(|| match &output {
                Some(out) => {
                    let mut file = memlm_core::atomic::AtomicFile::create(out)?;
                    let totals =
                        columns::classify_file(&self.inner, &path, file.writer(), distribution)?;
                    file.commit()?;
                    Ok(totals)
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = std::io::BufWriter::new(stdout.lock());
                    columns::classify_file(&self.inner, &path, &mut lock, distribution)
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
    tokens: PyReadonlyArray1<u32>,
    block_lengths: PyReadonlyArray1<u64>,
    width: usize,
    pad: u32,
    path: PathBuf,
) -> PyResult<()> {
    let windows = token_windows(tokens, block_lengths, width, pad)?;
    py.detach(|| columns::write_instance_file(&windows, &path))
        .map_err(to_py)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CoreModel>()?;
    m.add_function(wrap_pyfunction!(write_instances, m)?)?;
    m.add("MemlmError", m.py().get_type::<MemlmError>())?;
    m.add("ModelFormatError", m.py().get_type::<ModelFormatError>())?;
    m.add("InstanceFileError", m.py().get_type::<InstanceFileError>())?;
    m.add("FORMAT_VERSION", memlm_core::format::FORMAT_VERSION)?;
    Ok(())
}
