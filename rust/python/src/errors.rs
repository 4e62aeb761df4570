//! The core's errors as Python exceptions.

use std::io::ErrorKind;
use std::path::Path;

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

/// The exception class of each kind of core error. An I/O error becomes the OSError subclass of
/// its errno (FileNotFoundError, PermissionError, IsADirectoryError, BrokenPipeError, ...) with
/// `.errno`, `.strerror` (the reason alone, without "(os error N)") and `.filename` (the path).
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Io { path, source } => os_error(&path, &source),
        Error::BadModel { .. } => ModelFormatError::new_err(e.to_string()),
        Error::BadInstanceFile { .. } => InstanceFileError::new_err(e.to_string()),
        Error::InvalidInput(_) | Error::Interrupted => MemlmError::new_err(e.to_string()),
    }
}

/// `OSError(errno, strerror, filename)`, which Python turns into the subclass of the errno.
fn os_error(path: &Path, e: &std::io::Error) -> PyErr {
    let (errno, strerror) = match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let plain = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text)
                .to_string();
            (code, plain)
        }
        None => (errno_of(e.kind()), e.to_string()),
    };
    PyOSError::new_err((errno, strerror, path.as_os_str().to_os_string()))
}

/// The errno that stands for an error the OS did not give a number (memlm's own, such as "not a
/// regular file"). These numbers are the same on Linux, the BSDs, macOS and Windows' C runtime.
fn errno_of(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotFound => 2,            // ENOENT
        ErrorKind::PermissionDenied => 13,   // EACCES
        ErrorKind::AlreadyExists => 17,      // EEXIST
        ErrorKind::NotADirectory => 20,      // ENOTDIR
        ErrorKind::IsADirectory => 21,       // EISDIR
        ErrorKind::InvalidInput => 22,       // EINVAL
        ErrorKind::StorageFull => 28,        // ENOSPC
        ErrorKind::ReadOnlyFilesystem => 30, // EROFS
        ErrorKind::BrokenPipe => 32,         // EPIPE
        _ => 5,                              // EIO
    }
}
