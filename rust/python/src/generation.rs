//! A generation in progress, as a Python object that keeps its model alive.

use pyo3::prelude::*;

use crate::model::{guard, CoreModel};

/// A generation in progress: the core extends the context token by token (GIL released).
#[pyclass(name = "Generation", module = "memlm._core")]
pub struct Generation {
    pub model: Py<CoreModel>,
    pub state: memlm_core::Generation,
}

#[pymethods]
impl Generation {
    /// Generates up to `n` more tokens; fewer (or none) once `max_new_tokens` are done.
    fn next_ids(&mut self, py: Python<'_>, n: usize) -> PyResult<Vec<u32>> {
        let model = &self.model.get().inner;
        let state = &mut self.state;
        py.detach(|| guard(|| state.next_ids(model, n)))
    }

    /// How many tokens are still to come.
    #[getter]
    fn remaining(&self) -> usize {
        self.state.remaining()
    }
}
