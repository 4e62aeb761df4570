//! The value classes: Query, Answer, TrainOptions, Sampling. Each wraps the core's type, which
//! checks every field when made.

use std::path::PathBuf;

use memlm_core::knn::Vote;
use pyo3::prelude::*;

use crate::convert::Int;
use crate::errors::to_py;

/// How to answer a context; every field is checked when the query is made (MemlmError). `top_k`:
/// how many classes an answer keeps (0: all); generation does not use it (the Sampling decides).
#[pyclass(frozen, name = "Query", module = "memlm._core")]
pub struct Query {
    pub inner: memlm_core::Query,
    decay: f64,
}

#[pymethods]
impl Query {
    #[new]
    #[pyo3(
        signature = (algorithm="igtree", k=Int(1), vote="majority", decay=1.0, top_k=Int(5)),
        text_signature = "(algorithm='igtree', k=1, vote='majority', decay=1.0, top_k=5)"
    )]
    fn new(algorithm: &str, k: Int, vote: &str, decay: f64, top_k: Int) -> PyResult<Self> {
        let inner =
            memlm_core::Query::parse(algorithm, k.0, vote, decay, top_k.0).map_err(to_py)?;
        Ok(Query { inner, decay })
    }
    #[getter]
    fn algorithm(&self) -> &'static str {
        self.inner.algorithm().name()
    }
    #[getter]
    fn k(&self) -> usize {
        self.inner.knn().k
    }
    #[getter]
    fn vote(&self) -> &'static str {
        self.inner.knn().vote.name()
    }
    #[getter]
    fn decay(&self) -> f64 {
        match self.inner.knn().vote {
            Vote::ExponentialDecay { alpha } => alpha,
            _ => self.decay,
        }
    }
    /// How many classes an answer keeps, best first (0: all); not used by `CoreModel.generation`,
    /// where the Sampling decides (1 when greedy, its top_k when sampling).
    #[getter]
    fn top_k(&self) -> usize {
        self.inner.top_k()
    }
    fn __repr__(&self) -> String {
        format!(
            "Query(algorithm={:?}, k={}, vote={:?}, decay={:?}, top_k={})",
            self.algorithm(),
            self.k(),
            self.vote(),
            self.decay(),
            self.top_k()
        )
    }
}

/// One classifier's answer for one context.
#[pyclass(frozen, name = "Answer", module = "memlm._core")]
pub struct Answer {
    #[pyo3(get)]
    classes: Vec<u32>,
    #[pyo3(get)]
    votes: Vec<f64>,
    #[pyo3(get)]
    total: f64,
    #[pyo3(get)]
    depth: u32,
    #[pyo3(get)]
    distance: f64,
}

impl From<memlm_core::Answer> for Answer {
    fn from(a: memlm_core::Answer) -> Self {
        Answer {
            classes: a.classes,
            votes: a.votes,
            total: a.total,
            depth: a.depth,
            distance: a.distance,
        }
    }
}

#[pymethods]
impl Answer {
    fn __repr__(&self) -> String {
        format!(
            "Answer(classes={:?}, votes={:?}, total={:?}, depth={}, distance={:?})",
            self.classes, self.votes, self.total, self.depth, self.distance
        )
    }
}

/// Everything a build takes besides the text, checked when made (before any corpus is read).
#[pyclass(frozen, name = "TrainOptions", module = "memlm._core")]
pub struct TrainOptions {
    pub inner: memlm_core::TrainOptions,
}

#[pymethods]
impl TrainOptions {
    #[new]
    #[pyo3(
        signature = (width=Int(16), weighting="gain_ratio", algorithms=vec!["igtree".to_string()], temp_dir=None, keep_tokens=false),
        text_signature = "(width=16, weighting='gain_ratio', algorithms=['igtree'], temp_dir=None, keep_tokens=False)"
    )]
    fn new(
        width: Int,
        weighting: &str,
        algorithms: Vec<String>,
        temp_dir: Option<PathBuf>,
        keep_tokens: bool,
    ) -> PyResult<Self> {
        let inner =
            memlm_core::TrainOptions::new(width.0, weighting, &algorithms, temp_dir, keep_tokens)
                .map_err(to_py)?;
        Ok(TrainOptions { inner })
    }
    #[getter]
    fn width(&self) -> usize {
        self.inner.width
    }
    #[getter]
    fn weighting(&self) -> &'static str {
        self.inner.weighting.name()
    }
    #[getter]
    fn instance_base(&self) -> bool {
        self.inner.instance_base
    }
    #[getter]
    fn keep_tokens(&self) -> bool {
        self.inner.keep_tokens
    }
    #[getter]
    fn temp_dir(&self) -> Option<PathBuf> {
        self.inner.temp_dir.clone()
    }
    fn __repr__(&self) -> String {
        let temp_dir = match &self.inner.temp_dir {
            Some(dir) => format!("{:?}", dir.display().to_string()),
            None => "None".into(),
        };
        format!(
            "TrainOptions(width={}, weighting={:?}, instance_base={}, temp_dir={temp_dir}, keep_tokens={})",
            self.inner.width,
            self.weighting(),
            py_bool(self.inner.instance_base),
            py_bool(self.inner.keep_tokens)
        )
    }
}

/// How generation picks tokens (Hugging Face's names); checked when made.
#[pyclass(frozen, name = "Sampling", module = "memlm._core")]
pub struct Sampling {
    pub inner: memlm_core::Sampling,
}

#[pymethods]
impl Sampling {
    #[new]
    #[pyo3(
        signature = (do_sample=false, temperature=1.0, top_k=Int(50), top_p=1.0),
        text_signature = "(do_sample=False, temperature=1.0, top_k=50, top_p=1.0)"
    )]
    fn new(do_sample: bool, temperature: f64, top_k: Int, top_p: f64) -> PyResult<Self> {
        let inner =
            memlm_core::Sampling::new(do_sample, temperature, top_k.0, top_p).map_err(to_py)?;
        Ok(Sampling { inner })
    }
    #[getter]
    fn do_sample(&self) -> bool {
        self.inner.do_sample()
    }
    #[getter]
    fn temperature(&self) -> f64 {
        self.inner.temperature()
    }
    #[getter]
    fn top_k(&self) -> usize {
        self.inner.top_k()
    }
    #[getter]
    fn top_p(&self) -> f64 {
        self.inner.top_p()
    }
    fn __repr__(&self) -> String {
        format!(
            "Sampling(do_sample={}, temperature={:?}, top_k={}, top_p={:?})",
            py_bool(self.do_sample()),
            self.temperature(),
            self.top_k(),
            self.top_p()
        )
    }
}

/// A bool as Python prints it.
fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}
