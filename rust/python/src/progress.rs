//! Builds with a Python progress callback that can stop them: Ctrl-C (KeyboardInterrupt) or any
//! exception the callback raises aborts the build, and the same exception object is raised again.
//! Atomic writes are stopped the same way, by a Ctrl-C pending just before their rename.

use std::sync::Mutex;

use memlm_core::atomic::Stop;
use memlm_core::build::Progress;
use memlm_core::Error;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::model::panic_error;

/// Runs `build` with the GIL released, handing it a progress callback. The core calls it at least
/// every [`memlm_core::build::REPORT_INTERVAL`] (100 ms) in every phase; each call takes the GIL
/// briefly and calls `progress(phase, done, total)`, or with `progress=None` only
/// `py.check_signals()` (so that Ctrl-C is noticed). An exception there stops the build (nothing
/// is written, spilled partitions are removed) and is raised here: the same object, so a
/// KeyboardInterrupt stays a KeyboardInterrupt.
pub fn run_build<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    build: impl FnOnce(Progress) -> memlm_core::Result<T> + Send,
) -> PyResult<T> {
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let report = |phase: &str, done: u64, total: u64| -> memlm_core::Result<()> {
        let outcome = Python::attach(|py| match &progress {
            Some(callback) => callback.call1(py, (phase, done, total)).map(drop),
            None => py.check_signals(),
        });
        outcome.map_err(|e| {
            // The first exception is the one raised: a later one (were the callback called again)
            // never replaces it.
            raised
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
            Error::Interrupted
        })
    };
    let result =
        py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(&report))));
    let raised = raised.into_inner().unwrap_or_else(|p| p.into_inner());
    result.map_err(panic_error)?.map_err(|e| match raised {
        Some(exception) => exception,
        None => to_py(e),
    })
}

/// Runs `write`, a call of the core that writes a file atomically, with the GIL released, handing
/// it a [`Stop`] check that the core makes just before the rename: a Ctrl-C (or another signal
/// whose handler raises) that arrived during the write abandons it, the file already at the path
/// stays as it was, and KeyboardInterrupt is raised here. (With no callback, the progress report
/// that [`run_build`] hands over only checks for signals: the phase is never seen.)
pub fn run_write<T: Send>(
    py: Python<'_>,
    write: impl FnOnce(Stop) -> memlm_core::Result<T> + Send,
) -> PyResult<T> {
    run_build(py, None, |report| write(&|| report.report("writing", 0, 0)))
}
