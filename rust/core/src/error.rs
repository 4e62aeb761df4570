//! The one error type of the core crate.

use std::path::PathBuf;

/// Everything that can go wrong in the core, each with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The model file is not a memlm model, is truncated, corrupt or of another format version.
    #[error("{path}: {reason}")]
    BadModel { path: PathBuf, reason: String },
    /// The caller passed something the model cannot use (wrong width, empty corpus, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// A TiMBL column-format instance file could not be parsed.
    #[error("{path}:{line}: {reason}")]
    BadInstanceFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Result with the core's error type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An unknown name of a `kind` of thing (algorithm, weighting, vote), with the names to use.
    pub(crate) fn unknown_name(kind: &str, name: &str, names: &[&str]) -> Self {
        let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        let choices = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Error::InvalidInput(format!("unknown {kind} {name:?}: use {choices}"))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
