//! Atomic writes across threads and processes: concurrent saves to one path, a writer killed mid-write.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use memlm_core::atomic::{write_atomic, AtomicFile, LEFTOVER_AGE};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn concurrent_writes_to_one_path_are_each_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.memlm");
    // Contents of different lengths and bytes, large enough to take several buffer flushes.
    let contents: Vec<Vec<u8>> = (0..4u8)
        .map(|t| vec![t + 1; (3 << 20) + t as usize * 4099])
        .collect();
    for _round in 0..5 {
        std::thread::scope(|s| {
            for c in &contents {
                let path = &path;
                s.spawn(move || write_atomic(path, c, None).unwrap());
            }
        });
        let written = std::fs::read(&path).unwrap();
        assert!(contents.contains(&written), "a mix of writes");
        assert_eq!(names(dir.path()), ["m.memlm"]);
    }
}

/// The child's side of `a_killed_writer_leaves_a_file_the_next_write_sweeps`: starts a write, says
/// when its temporary file is written, and waits to be killed.
#[test]
fn child_writer() {
    let Ok(target) = std::env::var("MEMLM_TEST_CHILD_WRITER") else {
        return; // run as a test on its own: nothing to do
    };
    let mut f = AtomicFile::create(Path::new(&target)).unwrap();
    f.writer().write_all(&vec![1u8; 2 << 20]).unwrap();
    f.writer().flush().unwrap();
    println!("WRITTEN");
    std::io::stdout().flush().unwrap();
    // Until killed (or until the parent goes away and its end of the pipe closes).
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

#[cfg(unix)]
#[test]
fn a_killed_writer_leaves_a_file_the_next_write_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.memlm");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("MEMLM_TEST_CHILD_WRITER", &target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // libtest prints "test child_writer ... " before the test's own output, on the same line.
    let written = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .any(|line| line.unwrap().contains("WRITTEN"));
    assert!(written, "the child said it wrote");
    // The temporary file is the folder's only file (the target does not exist yet).
    let [temp_name] = &names(dir.path())[..] else {
        panic!("not one temporary file: {:?}", names(dir.path()));
    };
    let temp = dir.path().join(temp_name);
    assert_eq!(std::fs::metadata(&temp).unwrap().len(), 2 << 20);
    // Old enough to be swept, but the writer is alive and holds its lock: kept.
    let backdate = |p: &Path| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - LEFTOVER_AGE - Duration::from_secs(5))
            .unwrap();
    };
    backdate(&temp);
    write_atomic(&target, b"one", None).unwrap();
    assert!(temp.exists(), "a live writer's file was removed");
    // Killed mid-write: the file stays behind until the next write to the same path.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(temp.exists());
    write_atomic(&target, b"two", None).unwrap();
    assert!(!temp.exists(), "the leftover was not swept");
    assert_eq!(names(dir.path()), ["m.memlm"]);
    assert_eq!(std::fs::read(&target).unwrap(), b"two");
}
