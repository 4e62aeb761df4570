//! Atomic file writes: a temporary file in the target's folder, synced, then renamed over the target.
//!
//! What a write to `path` does, and the rules it follows:
//! - **Destination.** `path` must be a regular file or not exist yet. A folder is refused with
//!   "Is a directory" (errno EISDIR); a FIFO, a device or a socket with "not a regular file (a
//!   FIFO)" and the like (EINVAL), before anything is written. A **symbolic link is written
//!   through**: the chain of links is followed and the file it ends at is replaced (the temporary
//!   file is made in that file's folder and renamed over it), so the link stays a link; a link that
//!   leads nowhere makes the file it names. The check is made when the write starts and again just
//!   before the rename.
//! - **Stopping.** [`AtomicFile::commit`] takes an optional [`Stop`] check, asked after the file is
//!   written and synced, just before the rename (the binding: is a Ctrl-C pending?). An error there
//!   abandons the write: the temporary file is removed, the target is left as it was, and the error
//!   is returned. What the check cannot cover is the rename itself and the folder's sync after it:
//!   a stop asked for from the moment the check returns is too late, the target is replaced.
//! - **Temporary file.** `.NAME.memlm-tmp-PID-XXXXXX` next to the destination `NAME`: PID is the
//!   writer's process id, XXXXXX random; created with O_EXCL (a name already taken, by a planted
//!   link or file, is never opened: another random part is drawn) and the permissions a new file
//!   gets (0666 less the umask), and locked (`flock`, exclusive) for as long as it is written. Every write has its own, so concurrent writes to one path are each
//!   atomic: the last rename wins, and the file is always one whole write.
//! - **Scratch files.** [`AtomicFile::scratch`] (and [`write_scratch`]) skip the syncs, of the file
//!   and of its folder after the rename: for a build's intermediate files (a cluster build's shards
//!   and spilled partitions), which nothing needs after a crash. The rename is as atomic: another
//!   process sees the whole file or none.
//! - **Cleaning up.** The temporary file is removed on every error and when the write is
//!   abandoned (dropped before [`AtomicFile::commit`]). A writer that is killed (SIGKILL, power
//!   loss) leaves it behind; the next write to the same destination sweeps such leftovers: a
//!   `.NAME.memlm-tmp-*` file is removed when it is a regular file, was last modified more than
//!   [`LEFTOVER_AGE`] ago, no process holds its lock (the kernel drops a dead writer's lock) and
//!   its PID is not the sweeper's own. A live writer's file is never removed: it holds the lock.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempPath;

use crate::error::{shown, Error, Result};

/// How long ago an unlocked leftover temporary file must have been modified before a write sweeps
/// it (the lock says whether its writer is alive; the age covers the instant between a writer
/// creating its file and locking it).
pub const LEFTOVER_AGE: Duration = Duration::from_secs(60);

/// The marker between a destination's name and the rest of its temporary files' names.
const MARKER: &str = ".memlm-tmp-";

/// At most this many symbolic links are followed from a destination (as Linux does).
const MAX_LINKS: usize = 40;

/// Random characters at the end of a temporary file's name (drawn by `tempfile`, which makes the
/// file with O_EXCL and draws again when a file, or a link, of that name exists).
const RANDOM_CHARS: usize = 6;

/// Bytes of the destination's name kept in a temporary file's name (so that it stays under the
/// 255 bytes a file name may have).
const NAME_BYTES: usize = 200;

/// A check made just before a write is committed; an error abandons the write (see the module's
/// documentation).
pub type Stop<'a> = &'a (dyn Fn() -> Result<()> + Sync);

/// A file being written; it replaces its target only on [`AtomicFile::commit`], and is removed if
/// dropped before that, so a failed or interrupted write never leaves a half-written target.
pub struct AtomicFile {
    /// The path as the caller gave it (named in errors).
    path: PathBuf,
    /// Where the file goes: `path`, or the file a symbolic link at `path` leads to.
    target: PathBuf,
    /// The temporary file (removed when dropped) ...
    tmp: Option<TempPath>,
    /// ... and its writer, which holds the file's lock.
    writer: Option<BufWriter<File>>,
    /// Whether the file and its folder are synced when committed (not for scratch files).
    synced: bool,
}

impl AtomicFile {
    /// Starts writing `path` (see the module's documentation for what is refused, and the sweep of
    /// leftovers).
    pub fn create(path: &Path) -> Result<Self> {
        Self::start(path, true)
    }

    /// Starts writing a scratch file at `path`: as [`AtomicFile::create`], but not synced (see the
    /// module's documentation).
    pub fn scratch(path: &Path) -> Result<Self> {
        Self::start(path, false)
    }

    fn start(path: &Path, synced: bool) -> Result<Self> {
        let target = destination(path)?;
        let name = target
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{}: not a file path", shown(path))))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let prefix = temp_prefix(name);
        sweep_leftovers(&dir, &prefix);
        let mut own = prefix;
        own.push(format!("{}-", std::process::id()));
        // The OS's error of the last attempt to make the file: `tempfile` adds the temporary path
        // to the errors it returns, and errors name the destination only.
        let os_error = std::cell::Cell::new(None);
        let (file, tmp) = tempfile::Builder::new()
            .prefix(&own)
            .rand_bytes(RANDOM_CHARS)
            .make_in(&dir, |name| {
                new_file(name).inspect_err(|e| os_error.set(e.raw_os_error()))
            })
            .map_err(|e| {
                let e = match os_error.get() {
                    Some(code) => std::io::Error::from_raw_os_error(code),
                    None => e,
                };
                Error::io(path, e)
            })?
            .into_parts();
        lock(&file);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            target,
            tmp: Some(tmp),
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            synced,
        })
    }

    /// The buffered writer of the temporary file.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("not committed yet")
    }

    /// Flushes, syncs and renames the temporary file over the target (which is checked once more
    /// first: still a regular file or absent); `stop`, when given, is asked just before the rename,
    /// and its error abandons the write.
    pub fn commit(mut self, stop: Option<Stop<'_>>) -> Result<()> {
        let writer = self.writer.take().expect("not committed yet");
        let file = writer
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        if self.synced {
            file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        }
        match std::fs::symlink_metadata(&self.target) {
            Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
                return Err(Error::not_a_regular_file(&self.path, m.file_type()));
            }
            _ => {}
        }
        if let Some(stop) = stop {
            stop()?; // the temporary file goes when `self` is dropped
        }
        let tmp = self.tmp.take().expect("not committed yet");
        // A failed rename gives the temporary path back in the error, which removes it when dropped.
        tmp.persist(&self.target)
            .map_err(|e| Error::io(&self.path, e.error))?;
        // The lock is released after the rename: the temporary name was locked as long as it existed.
        drop(file);
        if self.synced {
            sync_folder(&self.target);
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Removed while still locked, then closed without writing out the buffer.
        drop(self.tmp.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.into_parts();
        }
    }
}

/// Writes `bytes` to `path` atomically; `stop` as for [`AtomicFile::commit`].
pub fn write_atomic(path: &Path, bytes: &[u8], stop: Option<Stop<'_>>) -> Result<()> {
    write_bytes(AtomicFile::create(path)?, path, bytes, stop)
}

/// Writes `bytes` to a scratch file at `path` atomically (see [`AtomicFile::scratch`]).
pub fn write_scratch(path: &Path, bytes: &[u8]) -> Result<()> {
    write_bytes(AtomicFile::scratch(path)?, path, bytes, None)
}

fn write_bytes(
    mut file: AtomicFile,
    path: &Path,
    bytes: &[u8],
    stop: Option<Stop<'_>>,
) -> Result<()> {
    file.writer()
        .write_all(bytes)
        .map_err(|e| Error::io(path, e))?;
    file.commit(stop)
}

/// Makes the temporary file `name`: only if no file or link of that name exists (O_EXCL; on
/// AlreadyExists `tempfile` draws another name), with the permissions a new file gets (0666 less
/// the umask).
fn new_file(name: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o666);
    }
    options.open(name)
}

/// The file a write to `path` replaces or makes: `path`, or where the symbolic links from it lead;
/// an error when that is not a regular file. The empty path is no file ("No such file or
/// directory", as the OS says when asked to open it).
fn destination(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::io(
            path,
            std::io::Error::new(ErrorKind::NotFound, "No such file or directory"),
        ));
    }
    let mut target = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match std::fs::symlink_metadata(&target) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(Error::io(path, e)),
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&target).map_err(|e| Error::io(path, e))?;
                // A relative link is relative to the folder that holds it (an absolute one replaces).
                target = match target.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            Ok(m) if m.is_file() => return Ok(target),
            Ok(m) => return Err(Error::not_a_regular_file(path, m.file_type())),
        }
    }
    // ELOOP, as opening a chain of links this long (or a loop) fails.
    #[cfg(unix)]
    let too_many = std::io::Error::from(rustix::io::Errno::LOOP);
    #[cfg(not(unix))]
    let too_many =
        std::io::Error::new(ErrorKind::InvalidInput, "too many levels of symbolic links");
    Err(Error::io(path, too_many))
}

/// `.NAME.memlm-tmp-`: how the temporary files of a destination named `name` start (the PID and the
/// random part follow).
fn temp_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        prefix.push(OsStr::from_bytes(&bytes[..bytes.len().min(NAME_BYTES)]));
    }
    #[cfg(not(unix))]
    {
        let lossy = name.to_string_lossy();
        let mut end = lossy.len().min(NAME_BYTES);
        while !lossy.is_char_boundary(end) {
            end -= 1;
        }
        prefix.push(&lossy[..end]);
    }
    prefix.push(MARKER);
    prefix
}

/// Takes the writer's lock on its temporary file (where the file system has no locks, the sweep
/// cannot take one either, and leaves the file alone).
fn lock(file: &File) {
    #[cfg(unix)]
    {
        let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive);
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// Syncs the folder that holds `path`, so that the rename survives a crash (best effort).
fn sync_folder(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(folder) = File::open(dir) {
            let _ = folder.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Removes the leftovers of killed writers in `dir` whose names start with `prefix` (see the
/// module's documentation for the rule); errors only mean a file is left alone.
fn sweep_leftovers(dir: &Path, prefix: &OsStr) {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let own = std::process::id();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.as_bytes().strip_prefix(prefix.as_bytes()) else {
                continue;
            };
            let pid = rest
                .split(|&b| b == b'-')
                .next()
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_none_or(|pid| pid == own) {
                continue;
            }
            sweep(&entry.path());
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, prefix);
}

/// Removes one leftover if it is old enough and unlocked.
#[cfg(unix)]
fn sweep(path: &Path) {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > LEFTOVER_AGE);
    if !meta.is_file() || !old {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    else {
        return;
    };
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return; // a live writer holds it, or the file system cannot tell
    }
    let same = file
        .metadata()
        .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    if same {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_target_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        write_atomic(&p, b"one", None).unwrap();
        write_atomic(&p, b"two", None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["m.memlm"]);
    }

    #[test]
    fn abandoned_write_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        write_atomic(&p, b"old", None).unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.writer().write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["m.memlm"]);
    }

    #[test]
    fn a_stop_before_the_rename_abandons_the_write() {
        // The check is made once, when the whole file is written and the target is still the old
        // one; its error leaves the old file and no temporary file, and is the error returned.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        write_atomic(&p, b"old", None).unwrap();
        let new = vec![7u8; 3 << 20];
        for stopped in [true, false] {
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let stop = || {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let temporary = dir.path().join(temporary_name(dir.path()));
                assert_eq!(
                    std::fs::metadata(temporary).unwrap().len(),
                    new.len() as u64
                );
                assert_eq!(std::fs::read(&p).unwrap(), b"old");
                if stopped {
                    return Err(Error::Interrupted);
                }
                Ok(())
            };
            let outcome = write_atomic(&p, &new, Some(&stop));
            assert_eq!(calls.into_inner(), 1);
            if stopped {
                assert!(matches!(outcome, Err(Error::Interrupted)), "{outcome:?}");
                assert_eq!(std::fs::read(&p).unwrap(), b"old");
            } else {
                outcome.unwrap();
                assert_eq!(std::fs::read(&p).unwrap(), new);
            }
            assert_eq!(names(dir.path()), ["m.memlm"]);
        }
    }

    #[test]
    fn a_missing_folder_or_empty_path_is_the_os_error_naming_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/m");
        let err = write_atomic(&p, b"x", None).unwrap_err();
        let Error::Io { path, source } = &err else {
            panic!("{err}")
        };
        assert_eq!(path, &p);
        assert_eq!(source.kind(), ErrorKind::NotFound);
        // The OS's words alone: no temporary path (tempfile adds one to its errors).
        assert_eq!(
            err.to_string(),
            format!("{}: No such file or directory (os error 2)", p.display())
        );
        let err = write_atomic(Path::new(""), b"x", None).unwrap_err();
        assert_eq!(err.to_string(), "'': No such file or directory");
        assert!(matches!(&err, Error::Io { source, .. } if source.kind() == ErrorKind::NotFound));
    }

    #[test]
    fn temporary_name_is_recognisable_and_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        let a = AtomicFile::create(&p).unwrap();
        let b = AtomicFile::create(&p).unwrap();
        let start = format!(".m.memlm.memlm-tmp-{}-", std::process::id());
        let temp_names = names(dir.path());
        assert_eq!(temp_names.len(), 2, "{temp_names:?}");
        for name in &temp_names {
            assert!(name.starts_with(&start), "{name}");
            assert_eq!(name.len(), start.len() + RANDOM_CHARS, "{name}");
        }
        drop((a, b));
        assert!(names(dir.path()).is_empty());
    }

    /// The name of the one temporary file of `m.memlm` in `dir`.
    fn temporary_name(dir: &Path) -> String {
        let temps: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.starts_with(".m.memlm.memlm-tmp-"))
            .collect();
        assert_eq!(temps.len(), 1, "{temps:?}");
        temps[0].clone()
    }

    #[cfg(unix)]
    #[test]
    fn a_link_or_file_planted_at_the_temporary_name_is_left_alone() {
        // The random part of the name comes from `tempfile`, which draws it from fastrand's
        // thread-local generator: seeding that fixes the name the next write would use. A link or a
        // file planted at exactly that name must not be opened (O_EXCL): the write picks another
        // name, the link's target stays as it was, the planted file too.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let ghost = dir.path().join("ghost");
        // A link to a file, a link to nowhere, a file.
        for seed in 1..=3 {
            let next_name = || {
                fastrand::seed(seed);
                let f = AtomicFile::create(&p).unwrap();
                let name = temporary_name(dir.path());
                drop(f);
                name
            };
            let name = next_name();
            assert_eq!(next_name(), name, "the seed must fix the temporary name");
            let planted = dir.path().join(&name);
            match seed {
                1 => std::os::unix::fs::symlink(&victim, &planted).unwrap(),
                2 => std::os::unix::fs::symlink(&ghost, &planted).unwrap(),
                _ => std::fs::write(&planted, b"planted").unwrap(),
            }
            let before = std::fs::symlink_metadata(&planted).unwrap();
            fastrand::seed(seed);
            let mut f = AtomicFile::create(&p).unwrap();
            f.writer().write_all(b"model").unwrap();
            f.commit(None).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"model");
            assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
            assert!(!ghost.exists());
            let after = std::fs::symlink_metadata(&planted).unwrap();
            assert_eq!(after.file_type(), before.file_type());
            if after.is_file() {
                assert_eq!(std::fs::read(&planted).unwrap(), b"planted");
            }
            std::fs::remove_file(&planted).unwrap();
        }
        assert_eq!(names(dir.path()), ["m.memlm", "victim"]);
    }

    #[test]
    fn a_folder_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("m.memlm");
        std::fs::create_dir(&folder).unwrap();
        let err = write_atomic(&folder, b"x", None).unwrap_err();
        let Error::Io { path, source } = &err else {
            panic!("{err}")
        };
        assert_eq!(path, &folder);
        assert_eq!(source.kind(), ErrorKind::IsADirectory, "{err}");
        assert_eq!(names(dir.path()), ["m.memlm"]);
        assert!(names(&folder).is_empty());
    }

    #[test]
    fn a_failed_rename_leaves_nothing() {
        // The destination turns into a non-empty folder while the file is written: the rename fails
        // (the last check or the rename itself), the temporary file goes.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        let mut f = AtomicFile::create(&p).unwrap();
        f.writer().write_all(&vec![7u8; 3 << 20]).unwrap();
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), b"x").unwrap();
        assert!(f.commit(None).is_err());
        assert_eq!(names(dir.path()), ["m.memlm"]);
        assert_eq!(names(&p), ["inside"]);
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("m.memlm");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = write_atomic(&fifo, b"x", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: not a regular file (a FIFO)", fifo.display())
        );
        assert_eq!(names(dir.path()), ["m.memlm"]);
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        // /dev/null: refused by the check before a temporary file is made (nothing is written in /dev).
        let err = AtomicFile::create(Path::new("/dev/null")).err().unwrap();
        assert_eq!(
            err.to_string(),
            "/dev/null: not a regular file (a character device)"
        );
        // A link to a FIFO is refused as well, the link left as it was.
        let link = dir.path().join("link.memlm");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(write_atomic(&link, b"x", None)
            .unwrap_err()
            .to_string()
            .contains("not a regular file (a FIFO)"));
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("models");
        std::fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("real.memlm");
        std::fs::write(&real, b"old").unwrap();
        // A chain: a -> b (relative) -> models/real.memlm (absolute).
        let b = dir.path().join("b.memlm");
        let a = dir.path().join("a.memlm");
        std::os::unix::fs::symlink(&real, &b).unwrap();
        std::os::unix::fs::symlink("b.memlm", &a).unwrap();
        write_atomic(&a, b"new", None).unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        for link in [&a, &b] {
            assert!(std::fs::symlink_metadata(link)
                .unwrap()
                .file_type()
                .is_symlink());
        }
        assert_eq!(names(&real_dir), ["real.memlm"]);
        // A link that leads nowhere makes the file it names.
        let dangling = dir.path().join("d.memlm");
        std::os::unix::fs::symlink(real_dir.join("new.memlm"), &dangling).unwrap();
        write_atomic(&dangling, b"made", None).unwrap();
        assert_eq!(std::fs::read(real_dir.join("new.memlm")).unwrap(), b"made");
        // A loop is an error.
        let loop_a = dir.path().join("loop");
        std::os::unix::fs::symlink("loop", &loop_a).unwrap();
        let Err(Error::Io { source, .. }) = write_atomic(&loop_a, b"x", None) else {
            panic!("a loop is not an I/O error")
        };
        // ELOOP, as loading from the loop says (not EINVAL).
        let opened = File::open(&loop_a).unwrap_err();
        assert_eq!(source.raw_os_error(), opened.raw_os_error());
        assert_eq!(
            source.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
    }

    #[cfg(unix)]
    #[test]
    fn leftovers_of_dead_writers_are_swept_live_ones_kept() {
        use std::time::SystemTime;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.memlm");
        let old = SystemTime::now() - LEFTOVER_AGE - Duration::from_secs(5);
        let leftover = |name: &str, when: SystemTime| {
            let path = dir.path().join(name);
            let f = File::create(&path).unwrap();
            f.set_modified(when).unwrap();
            path
        };
        let dead = leftover(".m.memlm.memlm-tmp-999999-abcdef", old);
        let fresh = leftover(".m.memlm.memlm-tmp-999999-ghijkl", SystemTime::now());
        let other_target = leftover(".n.memlm.memlm-tmp-999999-abcdef", old);
        let own_pid = leftover(
            &format!(".m.memlm.memlm-tmp-{}-abcdef", std::process::id()),
            old,
        );
        let locked = leftover(".m.memlm.memlm-tmp-999998-abcdef", old);
        let holder = File::open(&locked).unwrap();
        lock(&holder);
        write_atomic(&p, b"model", None).unwrap();
        assert!(!dead.exists());
        for kept in [&fresh, &other_target, &own_pid, &locked] {
            assert!(kept.exists(), "{}", kept.display());
        }
        drop(holder);
        write_atomic(&p, b"model", None).unwrap();
        assert!(!locked.exists());
    }
}
