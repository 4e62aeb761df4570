//! The ASCII BPE encoder (memlm-core's `ascii_bpe`) as `memlm._core.AsciiBpe`.

use memlm_core::ascii_bpe;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::to_py;

/// GPT-2's byte-level BPE on ASCII text, from the tokens' bytes in rank order; it gives ranks.
#[pyclass(frozen, module = "memlm._core")]
pub struct AsciiBpe {
    inner: ascii_bpe::AsciiBpe,
}

#[pymethods]
impl AsciiBpe {
    #[new]
    fn new(tokens: Vec<Bound<'_, PyBytes>>) -> PyResult<Self> {
        let tokens = tokens.iter().map(|t| t.as_bytes().to_vec()).collect();
        let inner = ascii_bpe::AsciiBpe::new(tokens).map_err(to_py)?;
        Ok(AsciiBpe { inner })
    }

    /// The ranks of one ASCII text.
    fn encode(&self, text: &str) -> PyResult<Vec<u32>> {
        let mut ranks = Vec::new();
        self.inner
            .encode(text.as_bytes(), &mut ranks)
            .map_err(to_py)?;
        Ok(ranks)
    }

    /// ASCII texts' ranks concatenated (uint32) and how many each has (uint64), the GIL released; on
    /// rayon's threads when `parallel` (never in a forked child: rayon's pool did not come with it).
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (texts, parallel=true))]
    fn encode_texts<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyString>>,
        parallel: bool,
    ) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>)> {
        let texts: Vec<&str> = texts.iter().map(|t| t.to_str()).collect::<PyResult<_>>()?;
        let slices: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
        let (ranks, counts) = py
            .detach(|| self.inner.encode_texts(&slices, parallel))
            .map_err(to_py)?;
        Ok((ranks.into_pyarray(py), counts.into_pyarray(py)))
    }
}
