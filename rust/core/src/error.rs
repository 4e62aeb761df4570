//! The one error type of the core crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the core, each with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure, with the path it concerns. The source carries the OS error number when the
    /// OS gave one; errors memlm raises itself (a path that is not a regular file, see
    /// [`Error::not_a_regular_file`]) carry the [`std::io::ErrorKind`] that stands for one.
    #[error("{}: {source}", shown(path))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A model or shard file is not one (a model given as a shard, or the reverse, included), is
    /// truncated, corrupt or of another format version: the reason says which kind of file.
    #[error("{}: {reason}", shown(path))]
    BadModel { path: PathBuf, reason: String },
    /// The caller passed something the model cannot use (wrong width, empty corpus, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// The progress callback asked the build to stop (a Python binding: the callback raised); nothing
    /// was written.
    #[error("interrupted")]
    Interrupted,
    /// A TiMBL column-format instance file could not be parsed.
    #[error("{}:{line}: {reason}", shown(path))]
    BadInstanceFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Result with the core's error type.
pub type Result<T> = std::result::Result<T, Error>;

/// A path as messages show it: as it is, except that control characters (a newline, a tab) are
/// escaped as Rust escapes them (`\n`, `\t`, `\u{1b}`), bytes that are not UTF-8 are shown as
/// `\xff`, and the empty path is `''`; so a message is always one line and says which path it
/// means.
pub fn shown(path: &Path) -> String {
    fn push_text(out: &mut String, text: &str) {
        for c in text.chars() {
            if c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
    }
    if path.as_os_str().is_empty() {
        return "''".into();
    }
    let mut out = String::new();
    #[cfg(unix)]
    {
        use std::fmt::Write as _;
        use std::os::unix::ffi::OsStrExt;
        for chunk in path.as_os_str().as_bytes().utf8_chunks() {
            push_text(&mut out, chunk.valid());
            for byte in chunk.invalid() {
                write!(out, "\\x{byte:02x}").expect("writing to a String cannot fail");
            }
        }
    }
    #[cfg(not(unix))]
    push_text(&mut out, &path.to_string_lossy());
    out
}

/// `value`, a count a user gave (a saturated `i64`: one beyond `i64` arrives as its limit), as a
/// `usize` once it is at least `minimum` ([`Error::too_small`] otherwise).
pub(crate) fn count(what: &str, value: i64, minimum: u32) -> Result<usize> {
    usize::try_from(value)
        .ok()
        .filter(|&n| n >= minimum as usize)
        .ok_or_else(|| Error::too_small(what, minimum, value))
}

/// `value` once it is a positive finite number: the one wording of this error (the Python package's
/// checks use it too), the value shown as Python shows a float.
pub(crate) fn positive_finite(what: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        return Ok(value);
    }
    Err(Error::InvalidInput(format!(
        "{what} must be a positive finite number, got {}",
        python_float(value)
    )))
}

/// `x` as Python's `repr` writes it (`-1.0`, `nan`, `inf`, `1e-05`, `1e+16`), so that a message
/// shows a float as a Python user gave it. Rust's `Debug` already writes the shortest digits that
/// read back, and switches to an exponent at the same magnitudes (below 1e-4, from 1e16); Python
/// writes the exponent with a sign and at least two digits.
pub(crate) fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let debug = format!("{x:?}");
    match debug.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => debug,
    }
}

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

    /// An id outside a vocabulary of `n_ids` ids; `whose` names it ("the model's", "the
    /// tokenizer's"). The one wording of this error, also in the binding.
    pub fn outside_vocabulary(id: impl std::fmt::Display, whose: &str, n_ids: u32) -> Self {
        Error::InvalidInput(format!(
            "id {id} is outside {whose} vocabulary of {n_ids} ids"
        ))
    }

    /// A context of `ids` ids for a model of width `width`: the one wording of this error.
    pub(crate) fn wrong_width(ids: usize, width: usize) -> Self {
        Error::InvalidInput(format!(
            "a context has {ids} ids but the model's width is {width}"
        ))
    }

    /// A count below `minimum`: the one wording of this error (the Python package's checks use it
    /// too).
    pub(crate) fn too_small(what: &str, minimum: u32, value: impl std::fmt::Display) -> Self {
        Error::InvalidInput(format!("{what} must be at least {minimum}, got {value}"))
    }

    /// An I/O failure concerning `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Refuses `path`, which is of `file_type` and not a regular file, as a model, shard or
    /// instance file (to read or to write): a folder is [`std::io::ErrorKind::IsADirectory`]
    /// ("Is a directory", errno EISDIR in Python), anything else (FIFO, device, socket)
    /// [`std::io::ErrorKind::InvalidInput`] with "not a regular file (a FIFO)" and the like (errno
    /// EINVAL).
    pub fn not_a_regular_file(path: impl Into<PathBuf>, file_type: std::fs::FileType) -> Self {
        use std::io::{Error as IoError, ErrorKind};
        if file_type.is_dir() {
            return Error::io(
                path,
                IoError::new(ErrorKind::IsADirectory, "Is a directory"),
            );
        }
        let what = describe_file_type(file_type);
        Error::io(
            path,
            IoError::new(
                ErrorKind::InvalidInput,
                format!("not a regular file ({what})"),
            ),
        )
    }
}

/// What kind of thing a file that is neither a regular file nor a folder is, for messages (symbolic
/// links never get here: the callers follow them, or handle them themselves).
fn describe_file_type(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    #[cfg(not(unix))]
    let _ = file_type;
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_shown_as_python_shows_them() {
        // repr() of each in Python 3.
        for (x, python) in [
            (-1.0, "-1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.5, "0.5"),
            (1e-4, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (1e-300, "1e-300"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.25e300, "1.25e+300"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(python_float(x), python, "{x:?}");
        }
    }

    #[test]
    fn counts_and_positive_numbers_have_one_wording() {
        assert_eq!(count("k", 3, 1).unwrap(), 3);
        assert_eq!(count("top_k", 0, 0).unwrap(), 0);
        assert_eq!(
            count("k", 0, 1).unwrap_err().to_string(),
            "k must be at least 1, got 0"
        );
        assert_eq!(
            count("top_k", i64::MIN, 0).unwrap_err().to_string(),
            "top_k must be at least 0, got -9223372036854775808"
        );
        assert_eq!(positive_finite("decay", 0.5).unwrap(), 0.5);
        for (x, shown) in [(0.0, "0.0"), (-1.0, "-1.0"), (f64::NAN, "nan")] {
            assert_eq!(
                positive_finite("decay", x).unwrap_err().to_string(),
                format!("decay must be a positive finite number, got {shown}")
            );
        }
    }

    #[test]
    fn paths_are_shown_on_one_line() {
        for (path, expected) in [
            ("models/m.memlm", "models/m.memlm"),
            (
                "with space/\u{e9}t\u{e9}.memlm",
                "with space/\u{e9}t\u{e9}.memlm",
            ),
            ("new\nline.memlm", "new\\nline.memlm"),
            ("tab\tand\u{1b}esc", "tab\\tand\\u{1b}esc"),
            ("", "''"),
        ] {
            assert_eq!(shown(Path::new(path)), expected, "{path:?}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let bad = Path::new(std::ffi::OsStr::from_bytes(b"bad\xff.memlm"));
            assert_eq!(shown(bad), "bad\\xff.memlm");
        }
        let e = Error::io("a\nb.memlm", std::io::ErrorKind::NotFound.into());
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn not_a_regular_file_says_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let folder = std::fs::metadata(dir.path()).unwrap().file_type();
        let Error::Io { source, .. } = Error::not_a_regular_file(dir.path(), folder) else {
            panic!("not an Io error")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::IsADirectory);
        assert_eq!(source.to_string(), "Is a directory");
        #[cfg(unix)]
        {
            let null = std::fs::metadata("/dev/null").unwrap().file_type();
            let e = Error::not_a_regular_file("/dev/null", null);
            assert_eq!(
                e.to_string(),
                "/dev/null: not a regular file (a character device)"
            );
        }
    }
}
