//! The core's errors as Python exceptions.

use memlm_core::Error;
use pyo3::exceptions::{PyException, PyOSError};
use pyo3::PyErr;

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
    "A model or shard file is missing parts, truncated, corrupt, foreign or of another format version."
);
pyo3::create_exception!(
    _core,
    InstanceFileError,
    MemlmError,
    "A TiMBL column-format instance file could not be read."
);

/// The exception class of each kind of core error.
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { .. } => PyOSError::new_err(message),
        Error::BadModel { .. } => ModelFormatError::new_err(message),
        Error::BadInstanceFile { .. } => InstanceFileError::new_err(message),
        Error::InvalidInput(_) => MemlmError::new_err(message),
    }
}
