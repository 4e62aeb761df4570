"""Issue 12, round 4: what reaches the file at an output path. A signal during a save (Ctrl-C, SIGTERM,
SIGHUP) leaves the old file and no temporary one; an output that stdin reads, a FIFO or a device is
refused before any work; the empty path, names with control characters, missing folders and symlink
loops are one clear line."""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hardening_cli import _one_line_error

import memlm

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli


def _target(folder: Path) -> tuple[Path, bytes]:
    """A small model at folder/target.memlm (the file a save must not replace), and its bytes."""
    folder.mkdir()
    path = folder / "target.memlm"
    memlm.train(TEST_TEXT, width=2, output=path)
    return path, path.read_bytes()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_during_the_fsync(command: list[str], folder: Path, signum: int) -> subprocess.CompletedProcess:
    """Runs ``command`` under strace, which delays every fsync by 3 s: the save's temporary file is written
    and being synced when ``signum`` is sent to the traced process (not to strace), 0.5 s after the file
    shows. The check before the rename must then abandon the save."""
    strace = ["strace", "-f", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:delay_enter=3000000"]
    proc = subprocess.Popen([*strace, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(".memlm-tmp-" in name for name in os.listdir(folder)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        traced = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(traced) == 1, traced
        os.kill(int(traced[0]), signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace (to delay the fsync) is missing")


@needs_strace
@pytest.mark.parametrize(
    ("signum", "said"),
    [(signal.SIGINT, "memlm: interrupted"), (signal.SIGTERM, "memlm: interrupted by SIGTERM"),
     (signal.SIGHUP, "memlm: interrupted by SIGHUP")],
)  # fmt: skip
def test_a_signal_during_the_save_keeps_the_old_model(tmp_path, signum, said):
    target, before = _target(tmp_path / "out")
    command = [sys.executable, "-m", "memlm", "train", str(TRAIN_TEXT), "--width", "4", "-o", str(target)]
    proc = _signal_during_the_fsync(command, target.parent, signum)
    assert proc.returncode == 128 + signum, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == said
    assert "wrote" not in proc.stderr
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ["target.memlm"]


@needs_strace
def test_ctrl_c_during_model_save_raises_and_keeps_the_old_model(tmp_path, model4_path):
    target, before = _target(tmp_path / "out")
    script = (
        "import sys, memlm\n"
        "model = memlm.load(sys.argv[1])\n"
        "try:\n"
        "    model.save(sys.argv[2])\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
    )
    proc = _signal_during_the_fsync(
        [sys.executable, "-c", script, str(model4_path), str(target)], target.parent, signal.SIGINT
    )
    assert proc.returncode == 0 and proc.stdout == "KeyboardInterrupt\n", proc.stderr
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ["target.memlm"]


def test_sigterm_and_sighup_during_the_build_exit_with_128_plus_the_signal(tmp_path):
    # Without strace: the signal comes while the corpus is read from a FIFO that is never closed.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        target, before = _target(tmp_path / signal.Signals(signum).name)
        fifo = target.parent / "corpus.fifo"
        os.mkfifo(fifo)
        command = [sys.executable, "-m", "memlm", "train", str(fifo), "-o", str(target)]
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        with open(fifo, "wb") as corpus:  # returns once memlm opened the FIFO to read it
            corpus.write(TEST_TEXT.read_bytes()[:1000])
            corpus.flush()
            time.sleep(1)
            proc.send_signal(signum)
            stderr = proc.stderr.read()
            assert proc.wait(timeout=60) == 128 + signum, stderr
        assert stderr.strip().splitlines() == [f"memlm: interrupted by {signal.Signals(signum).name}"]
        assert target.read_bytes() == before
        assert sorted(os.listdir(target.parent)) == ["corpus.fifo", "target.memlm"]


# -- 2: an output that standard input reads ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["train", "--width", "4"], ["train", "--shard"], ["instances", "--width", "4"]])
def test_an_output_that_stdin_reads_is_refused_before_any_work(tmp_path, command):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEST_TEXT.read_text())
    link = tmp_path / "link.txt"
    link.symlink_to(corpus)
    for output in (corpus, link):
        with open(corpus, "rb") as stdin:
            argv = [sys.executable, "-m", "memlm", command[0], "-", *command[1:], "-o", str(output)]
            proc = subprocess.run(argv, stdin=stdin, capture_output=True, text=True)
        _one_line_error(proc, f"{output}: the output is also an input (standard input): write it to another file")
        assert corpus.read_text() == TEST_TEXT.read_text()
    # Another file on stdin is fine.
    with open(TEST_TEXT, "rb") as stdin:
        argv = [sys.executable, "-m", "memlm", "train", "-", "--width", "2", "-o", str(tmp_path / "m.memlm")]
        assert subprocess.run(argv, stdin=stdin, capture_output=True).returncode == 0


def test_an_output_that_stdin_reads_is_refused_from_python(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEST_TEXT.read_text())
    with open(corpus, "rb") as stdin:
        saved = os.dup(0)
        os.dup2(stdin.fileno(), 0)
        try:
            with pytest.raises(memlm.MemlmError, match="also an input"):
                memlm.train("-", width=2, output=corpus)
        finally:
            os.dup2(saved, 0)
            os.close(saved)


# -- 3, 4: a FIFO or a device as the output, refused up front ---------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize("output", ["fifo", "/dev/null"])
def test_a_fifo_or_device_output_is_refused_before_any_work(tmp_path, model4_path, output):
    path = _fifo(tmp_path) if output == "fifo" else Path(output)
    kind = "a FIFO" if output == "fifo" else "a character device"
    line = f"memlm: error: {path}: not a regular file ({kind})"
    shard = tmp_path / "a.shard"
    memlm.make_shard(TEST_TEXT, shard)
    missing = tmp_path / "missing.txt"  # never read: the output is refused first
    for args in (
        ["train", missing, "--width", 4, "-o", path],
        ["train", missing, "--shard", "-o", path],
        ["instances", missing, "-o", path],
        ["merge", missing, "-o", path],
        ["merge", missing, "--shard", "-o", path],
        ["classify", model4_path, "--instances", missing, "-o", path],
    ):
        proc = run_cli(*args, check=False)
        assert _one_line_error(proc) == line, args
    with pytest.raises(OSError) as raised:
        memlm.train(missing, output=path)
    assert raised.value.errno == errno.EINVAL and raised.value.filename == str(path)


def test_dev_stdout_into_a_pipe_is_refused_before_any_work(tmp_path):
    command = [sys.executable, "-m", "memlm", "train", str(tmp_path / "missing.txt"), "-o", "/dev/stdout"]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert _one_line_error(proc) == "memlm: error: /dev/stdout: not a regular file (a FIFO)"


def test_a_symlink_to_a_regular_file_is_still_an_output(tmp_path):
    target = tmp_path / "real.memlm"
    target.write_bytes(b"old")
    link = tmp_path / "link.memlm"
    link.symlink_to(target)
    memlm.train(TEST_TEXT, width=2, output=link)
    assert link.is_symlink() and memlm.load(target).width == 2


# -- merge on a FIFO, an empty shard -----------------------------------------------------------------------


@pytest.mark.parametrize("call", ["memlm.merge([FIFO], width=4)", "memlm.merge_shards([FIFO], OUT)"])
def test_merging_a_fifo_is_refused_at_once(tmp_path, call):
    fifo = _fifo(tmp_path)
    script = (
        f"import memlm\nFIFO, OUT = {str(fifo)!r}, {str(tmp_path / 'o.shard')!r}\n"
        f"try:\n    {call}\nexcept OSError as e:\n    print(e.errno, e.strerror)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert proc.stdout == f"{errno.EINVAL} not a regular file (a FIFO)\n", proc.stderr


def test_merging_a_fifo_from_the_cli_is_one_line(tmp_path):
    fifo = _fifo(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "memlm", "merge", str(fifo), "-o", str(tmp_path / "m.memlm")],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert _one_line_error(proc) == f"memlm: error: {fifo}: not a regular file (a FIFO)"


def test_an_empty_input_to_merge_is_called_an_empty_shard(tmp_path):
    empty = tmp_path / "empty.shard"
    empty.write_bytes(b"")
    with pytest.raises(memlm.ModelFormatError) as raised:
        memlm.merge([empty], width=4)
    assert str(raised.value) == f"{empty}: an empty file (0 bytes), not a memlm shard file"
    with pytest.raises(memlm.ModelFormatError, match="not a memlm shard file") as raised:
        memlm.merge([TEST_TEXT], width=4)
    assert "model" not in str(raised.value)


def test_an_instance_file_of_padding_only_is_one_line(tmp_path):
    instances = tmp_path / "i.txt"
    instances.write_text("_ _ _\n")
    proc = run_cli("train", "--instances", instances, "-o", tmp_path / "x.memlm", check=False)
    line = f'memlm: error: {instances}: every field is the padding symbol "_": nothing to learn'
    assert _one_line_error(proc) == line


# -- odd paths ---------------------------------------------------------------------------------------------


def test_the_empty_path_is_no_such_file(model4_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = memlm.load(model4_path)
    for call in (
        lambda: memlm.load(""),
        lambda: model.save(""),
        lambda: memlm.train(TEST_TEXT, width=2, output=""),
        lambda: memlm.merge([""], width=4),
    ):
        with pytest.raises(FileNotFoundError) as raised:
            call()
        assert (raised.value.errno, raised.value.filename) == (errno.ENOENT, "")
    for args in (["info", ""], ["verify", ""], ["train", TEST_TEXT, "--width", 2, "-o", ""], ["merge", "", "-o", "x"]):
        assert _one_line_error(run_cli(*args, check=False)) == "memlm: error: '': No such file or directory", args
    assert os.listdir(tmp_path) == []


def test_paths_with_control_characters_or_bad_bytes_stay_on_one_line(tmp_path):
    output = tmp_path / "new\nline.memlm"
    proc = run_cli("train", TEST_TEXT, "--width", 2, "-o", output)
    assert proc.stderr.count("\n") == 1 and f"wrote {tmp_path}/new\\nline.memlm: width 2" in proc.stderr
    missing = tmp_path / "tab\there\x1b.memlm"
    assert _one_line_error(run_cli("info", missing, check=False)) == (
        f"memlm: error: {tmp_path}/tab\\there\\u{{1b}}.memlm: No such file or directory"
    )
    # A name that is not UTF-8 (Python keeps the byte as a lone surrogate) shows the byte as \xff.
    bad = os.fsencode(tmp_path) + b"/bad\xff.memlm"
    proc = subprocess.run([sys.executable, "-m", "memlm", "info", bad], capture_output=True, text=True)
    assert _one_line_error(proc) == f"memlm: error: {tmp_path}/bad\\xff.memlm: No such file or directory"
    assert memlm.checks.shown_path("a\rb\0c\x7f") == "a\\rb\\0c\\u{7f}"


def test_saving_into_a_missing_folder_names_no_temporary_file(model4_path, tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        memlm.load(model4_path).save(tmp_path / "nodir" / "x.memlm")
    assert raised.value.errno == errno.ENOENT and "memlm-tmp" not in str(raised.value)


def test_a_symlink_loop_is_eloop_on_save_and_load(model4_path, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    with pytest.raises(OSError) as saving:
        memlm.load(model4_path).save(loop)
    with pytest.raises(OSError) as loading:
        memlm.load(loop)
    assert saving.value.errno == loading.value.errno == errno.ELOOP
    assert _one_line_error(run_cli("train", TEST_TEXT, "--width", 2, "-o", loop, check=False), str(loop))


def test_the_empty_path_as_a_corpus_is_no_such_file_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("x.memlm").write_bytes(b"old")  # in the current folder: no input, whatever Path("") would say
    for call in (lambda: memlm.train("", width=2), lambda: memlm.train(["", TEST_TEXT], width=2, output="x.memlm")):
        with pytest.raises(FileNotFoundError) as raised:
            call()
        assert (raised.value.errno, raised.value.filename) == (errno.ENOENT, "")
    proc = run_cli("train", "", "-o", "y.memlm", check=False)
    assert _one_line_error(proc) == "memlm: error: '': No such file or directory"


def test_messages_of_python_name_odd_paths_on_one_line(tmp_path):
    corpus = tmp_path / "bad\ncorpus.txt"
    corpus.write_bytes(b"ok \xff")
    proc = run_cli("train", corpus, "--width", 2, "-o", tmp_path / "m.memlm", check=False)
    _one_line_error(proc, f"{tmp_path}/bad\\ncorpus.txt: invalid UTF-8 at byte offset 3")
    tokenizer = tmp_path / "tok\n.json"
    tokenizer.write_text("{}")
    proc = run_cli("train", TEST_TEXT, "--tokenizer", tokenizer, "-o", tmp_path / "m.memlm", check=False)
    _one_line_error(proc, f"{tmp_path}/tok\\n.json: not a tokenizers JSON file")
    folder = tmp_path / "empty\tfolder"
    folder.mkdir()
    with pytest.raises(memlm.CorpusError, match=re.escape(f"{tmp_path}/empty\\tfolder: the directory holds no files")):
        memlm.train(folder)
