"""What a user of the command line sees when something goes wrong (issue 12): one line on stderr and exit
status 1 for errors (15), typer's usage message and 2 for usage errors (18), 130 for Ctrl-C with the old
model file left as it was (8), a quiet 141 when the reader of the output goes away (15)."""

import errno
import io
import os
import pty
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import memlm
from memlm import cli
from memlm.cli import app
from memlm.errors import InvalidUtf8Error

from conftest import ROOT, TEST_TEXT, TRAIN_TEXT, run_cli


def _memlm(*args) -> list[str]:
    return [sys.executable, "-m", "memlm", *map(str, args)]


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memlm: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# -- 15: one line, no traceback --------------------------------------------------------------------------


def test_bad_numbers_are_one_line_errors(model4_path, tmp_path):
    out = tmp_path / "m.memlm"
    _one_line_error(run_cli("train", TRAIN_TEXT, "--width", -1, "-o", out, check=False), "width", "-1")
    _one_line_error(run_cli("train", TRAIN_TEXT, "--width", 65, "-o", out, check=False), "width", "65")
    for command in ("eval", "classify"):
        args = [TEST_TEXT] if command == "eval" else ["--instances", TEST_TEXT]
        proc = run_cli(command, model4_path, *args, "--algorithm", "ib1", "-k", -1, check=False)
        _one_line_error(proc, "k must be at least 1")
    _one_line_error(run_cli("generate", model4_path, "It", "-k", -1, check=False), "k must be at least 1")
    _one_line_error(run_cli("generate", model4_path, "It", "--max-new-tokens", -1, check=False), "max_new_tokens")
    proc = run_cli("generate", model4_path, "It", "--do-sample", "--top-p", "nan", check=False)
    _one_line_error(proc, "top_p")
    # Memory budgets: what was given, never "-0 MiB".
    proc = run_cli("train", TRAIN_TEXT, "--memory", -5, "-o", out, check=False)
    assert "-0" not in _one_line_error(proc, "'-5'")
    with pytest.raises(memlm.MemlmError, match=re.escape(memlm.checks.memory_error("-5").args[0])):
        memlm.train(TRAIN_TEXT, memory=-5)
    proc = run_cli("train", TRAIN_TEXT, "--memory", "1k", "-o", out, check=False)
    assert " 0 MiB" not in _one_line_error(proc, "1,024 bytes is too small", "give at least")
    assert not out.exists()


def test_huge_numbers_are_clamped_or_one_line_errors(model4_path, tmp_path):
    # A top_k beyond the classes that exist keeps them all (as 0 does); a negative one is an error.
    args = ["generate", model4_path, "It was", "--do-sample", "--seed", 7, "--max-new-tokens", 8]
    everything = run_cli(*args, "--top-k", 0).stdout
    assert run_cli(*args, "--top-k", str(2**64)).stdout == everything
    _one_line_error(run_cli(*args, "--top-k", str(-(2**64)), check=False), "top_k")
    # A k beyond the distances that exist lets them all vote: at width 2 there are at most 4 (sums of two
    # feature weights), so 2**70 votes as 1000 does.
    ib1 = tmp_path / "ib1.memlm"
    run_cli("train", TEST_TEXT, "--width", 2, "--algorithms", "igtree,ib1", "-o", ib1)
    args = ["generate", ib1, "She was", "--max-new-tokens", 12, "--algorithm", "ib1", "-k"]
    assert run_cli(*args, str(2**70)).stdout == run_cli(*args, 1000).stdout != run_cli(*args, 1).stdout
    _one_line_error(run_cli(*args, str(-(2**70)), check=False), f"k must be at least 1, got {-(2**70)}")


def test_a_file_that_is_not_a_tokenizer_is_a_one_line_error(tmp_path):
    out = tmp_path / "m.memlm"
    for name, content in [("notok.json", b'{"a": 1}'), ("broken.json", b"{"), ("latin1.json", b"\xff\xfe{}")]:
        path = tmp_path / name
        path.write_bytes(content)
        for command in (["train", TRAIN_TEXT], ["train", TRAIN_TEXT, "--shard"], ["instances", TRAIN_TEXT]):
            proc = run_cli(*command, "--tokenizer", path, "-o", out, check=False)
            _one_line_error(proc, f"{path}: not a tokenizers JSON file")
        with pytest.raises(memlm.MemlmError, match="not a tokenizers JSON file"):
            memlm.train(TRAIN_TEXT, tokenizer=path)
    _one_line_error(run_cli("train", TRAIN_TEXT, "--tokenizer", tmp_path / "none.json", "-o", out, check=False))
    assert not out.exists()


def test_an_invalid_utf8_prompt_on_stdin_is_a_one_line_error(model4_path, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"It was \xff\xfe a fine")
    with open(bad, "rb") as stdin:
        proc = subprocess.run(_memlm("generate", model4_path), stdin=stdin, capture_output=True, text=True)
    # One shape for invalid UTF-8 (InvalidUtf8Error); the hint only where an option substitutes bad bytes.
    assert _one_line_error(proc) == "memlm: error: <stdin>: invalid UTF-8 at byte offset 7"
    with open(bad, "rb") as stdin:
        proc = subprocess.run(_memlm("score", model4_path), stdin=stdin, capture_output=True, text=True)
    hint = " (use --errors replace to substitute)"
    assert _one_line_error(proc) == f"memlm: error: <stdin>: invalid UTF-8 at byte offset 7{hint}"
    proc = run_cli("generate", model4_path, "--max-new-tokens", 3, stdin="It was")
    assert proc.stdout.startswith("It was")


def test_core_file_errors_name_the_path_in_one_line(tmp_path):
    missing = tmp_path / "missing.memlm"
    _one_line_error(run_cli("info", missing, check=False), f"{missing}: ")
    with pytest.raises(OSError) as raised:
        memlm.load(missing)
    assert str(missing) in str(raised.value)


def test_core_os_errors_are_the_errno_subclasses(tmp_path):
    missing = tmp_path / "missing.memlm"
    try:
        memlm.load(missing)
    except FileNotFoundError as e:
        assert e.errno == errno.ENOENT and e.filename == str(missing)
    else:
        raise AssertionError("no error")
    assert run_cli("info", missing, check=False).stderr == f"memlm: error: {missing}: No such file or directory\n"
    # Saving onto a folder.
    with pytest.raises(IsADirectoryError) as raised:
        memlm.train(TEST_TEXT, width=2).save(tmp_path)
    assert raised.value.filename == str(tmp_path)


def test_a_folder_or_a_fifo_as_the_model_is_one_clear_line(tmp_path):
    line = _one_line_error(run_cli("info", tmp_path, check=False), f"{tmp_path}: ")
    assert "No such device" not in line and "os error" not in line
    with pytest.raises(IsADirectoryError):
        memlm.load(tmp_path)
    fifo = tmp_path / "fifo.memlm"
    os.mkfifo(fifo)
    # No writer ever opens it: opening it to read would wait for ever.
    proc = subprocess.run(_memlm("info", fifo), capture_output=True, text=True, timeout=60)
    assert _one_line_error(proc, str(fifo)) == f"memlm: error: {fifo}: not a regular file (a FIFO)"
    with pytest.raises(OSError, match="not a regular file"):
        memlm.load(fifo)


# -- 15: a reader that goes away -------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly_with_141(model4_path, tmp_path):
    # `memlm score MODEL FILE | head -1`: the reader quits after one line; memlm stops without a word, with
    # status 141 (128 + SIGPIPE), what the shell shows for a tool ended by SIGPIPE.
    proc = subprocess.Popen(_memlm("score", model4_path, TEST_TEXT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    status = proc.wait(timeout=120)
    stderr = proc.stderr.read().decode()
    assert first.startswith(b"'") and status == 141, (status, stderr)
    assert stderr == ""
    command = f"set -o pipefail; {' '.join(_memlm('score', model4_path, TEST_TEXT))} | head -1"
    shell = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert shell.returncode == 141 and len(shell.stdout.splitlines()) == 1 and shell.stderr == ""
    # Also for output written by rich (eval's table), by generate, and by the core (classify).
    instances = tmp_path / "test4.txt"
    run_cli("instances", TEST_TEXT, "--width", 4, "-o", instances)
    command = (
        f"set -o pipefail; {' '.join(map(str, _memlm('classify', model4_path, '--instances', instances)))} | head -1"
    )
    shell = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert shell.returncode == 141 and len(shell.stdout.splitlines()) == 1 and shell.stderr == "", shell.stderr
    for args in (["eval", model4_path, TEST_TEXT], ["generate", model4_path, "It", "--max-new-tokens", 200]):
        command = f"{' '.join(map(str, _memlm(*args)))} | true"
        shell = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True)
        assert shell.returncode in (0, 141) and shell.stderr == "", (args, shell.stderr)


# -- 18: exit statuses -----------------------------------------------------------------------------------


def test_a_bug_is_not_hidden_as_a_one_line_error(monkeypatch, model4_path):
    # Only memlm's errors and OSErrors become one line: a ValueError (numpy's, json's, a bug) keeps its
    # traceback, so that it can be reported.
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(memlm, "load", broken)
    result = CliRunner().invoke(app, ["info", str(model4_path)])
    assert isinstance(result.exception, ValueError), result.output


def test_exit_statuses(model4_path, tmp_path):
    # 0: done.
    assert run_cli("info", model4_path).returncode == 0
    # 2: usage errors, typer's message (what was wrong, and how to get help).
    for args in (
        ["train", TRAIN_TEXT, "--width", "abc", "-o", tmp_path / "m.memlm"],
        ["train", TRAIN_TEXT],  # -o missing
        ["no-such-command"],
        ["score"],  # MODEL missing
        ["eval", model4_path, TEST_TEXT, "--no-such-option"],
    ):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Usage: memlm" in proc.stderr and "Traceback" not in proc.stderr
    # 1: errors of the input or the system, one line.
    _one_line_error(run_cli("info", TRAIN_TEXT, check=False), str(TRAIN_TEXT))
    _one_line_error(run_cli("eval", model4_path, tmp_path / "missing.txt", check=False), "missing.txt")
    # 130 (Ctrl-C) and 141 (closed pipe): see the tests above and below.


# -- 8: Ctrl-C -------------------------------------------------------------------------------------------


def _old_model(folder: Path) -> tuple[Path, bytes]:
    folder.mkdir()
    path = folder / "model.memlm"
    memlm.train(TEST_TEXT, width=2, output=path)
    return path, path.read_bytes()


def test_ctrl_c_while_reading_the_corpus_exits_130(tmp_path):
    model, before = _old_model(tmp_path / "out")
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(_memlm("train", fifo, "-o", model), stderr=subprocess.PIPE, text=True)
    opened = threading.Event()

    def write() -> None:
        with open(fifo, "wb") as corpus:  # returns once memlm opened the FIFO to read it
            opened.set()
            corpus.write(TEST_TEXT.read_bytes()[:1000])
            corpus.flush()
            time.sleep(30)  # memlm waits for more

    threading.Thread(target=write, daemon=True).start()
    assert opened.wait(60)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert stderr.strip().splitlines() == ["memlm: interrupted"]
    assert model.read_bytes() == before
    assert sorted(os.listdir(model.parent)) == ["model.memlm"]


def _big_corpus(path: Path) -> Path:
    """~4.5 MB of text made of the sample texts: ten rounds of their paragraphs in a random order, each with
    two of its words swapped, so that the build has a million different instances to work on."""
    paragraphs = [p for p in (TRAIN_TEXT.read_text() + TEST_TEXT.read_text()).split("\n\n") if p.strip()]
    rng = random.Random(12)
    varied = []
    for _ in range(10):
        for paragraph in rng.sample(paragraphs, len(paragraphs)):
            words = paragraph.split()
            i = rng.randrange(len(words))
            words[i], words[-1 - i] = words[-1 - i], words[i]
            varied.append(" ".join(words))
    path.write_text("\n\n".join(varied))
    return path


def test_ctrl_c_during_the_build_exits_130_and_keeps_the_old_model(tmp_path):
    model, before = _old_model(tmp_path / "out")
    corpus = _big_corpus(tmp_path / "corpus.txt")
    # On a terminal the progress bars name each phase as it starts: stderr is a pseudo-terminal, read until
    # the first phase after tokenising shows, then Ctrl-C. The build of a million instances with the instance
    # base takes seconds more.
    progress, terminal = pty.openpty()
    command = _memlm("train", corpus, "--algorithms", "igtree,tribl2", "-o", model)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    try:
        shown = _read_terminal(progress, until=b"computing feature weights")
        assert b"computing feature weights" in shown, shown
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        shown = _read_terminal(progress)
        assert proc.wait(timeout=120) == 130, shown
    finally:
        proc.kill()
        os.close(progress)
    assert time.monotonic() - interrupted < 3
    assert b"memlm: interrupted" in shown and b"wrote" not in shown
    assert model.read_bytes() == before
    assert sorted(os.listdir(model.parent)) == ["model.memlm"]


def _read_terminal(fd: int, until: bytes | None = None, timeout: float = 60.0) -> bytes:
    """What a pseudo-terminal showed, up to ``until`` (or until the program closed it, or ``timeout``)."""
    shown = b""
    deadline = time.monotonic() + timeout
    while (until is None or until not in shown) and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:  # EIO: the program ended, the terminal is closed
                break
            if not chunk:
                break
            shown += chunk
    return shown


class _Stop(Exception):
    pass


def test_an_exception_in_the_progress_callback_stops_the_build(tmp_path):
    # What Ctrl-C does through the callback, with any exception: the same object comes out of the build,
    # nothing is saved.
    model, before = _old_model(tmp_path / "out")
    instances = tmp_path / "inst.txt"
    run_cli("instances", TRAIN_TEXT, "--width", 3, "-o", instances)
    phases = []

    def progress(phase: str, done: int, total: int) -> None:
        phases.append(phase)
        if phase.startswith("building"):
            raise _Stop(phase)

    with pytest.raises(_Stop, match="building the IGTree"):
        memlm.train(TRAIN_TEXT, width=3, progress=progress, output=model)
    with pytest.raises(_Stop, match="building the IGTree"):
        memlm.train_instances(instances, progress=progress, output=model)
    assert "reading the instance file" in phases
    assert model.read_bytes() == before
    assert sorted(os.listdir(model.parent)) == ["model.memlm"]


# -- issue 12, round 2 -----------------------------------------------------------------------------------


def test_knn_options_are_refused_whatever_the_algorithm(model4_path, tmp_path):
    instances = tmp_path / "i.txt"
    instances.write_text("_ _ _ 464 373\n")
    for option, message in [
        (["-k", -1], "k must be at least 1, got -1"),
        (["-k", 0], "k must be at least 1, got 0"),
        (["--vote", "foo"], 'unknown vote "foo"'),
        (["--decay", "nan"], "decay must be a positive finite number, got nan"),
        (["--decay", -1], "decay must be a positive finite number, got -1.0"),
    ]:
        for command in (
            ["eval", model4_path, TEST_TEXT],
            ["classify", model4_path, "--instances", instances],
            ["generate", model4_path, "It was"],
        ):
            _one_line_error(run_cli(*command, *option, check=False), message)


def test_numbers_beyond_64_bits_are_shown_as_given(model4_path, tmp_path):
    huge = "99999999999999999999"
    out = tmp_path / "m.memlm"
    for args, message in [
        (["train", TRAIN_TEXT, "--width", huge, "-o", out], f"width must be between 1 and 64, got {huge}"),
        (["instances", TRAIN_TEXT, "--width", huge, "-o", out], f"width must be between 1 and 64, got {huge}"),
        (["generate", model4_path, "It", "--max-new-tokens", huge], f"in [0, 2**64), got {huge}"),
        (["generate", model4_path, "It", "--seed", huge, "--do-sample"], f"in [0, 2**64), got {huge}"),
    ]:
        _one_line_error(run_cli(*args, check=False), message)
    assert not out.exists()


@pytest.mark.parametrize("memory", ["1e99", "18446744073709551616", "-1", "0", "0.5", "nan", "inf", "-inf"])
def test_memory_budgets_out_of_range_are_one_line_errors(tmp_path, memory):
    out = tmp_path / "m.memlm"
    proc = run_cli("train", TRAIN_TEXT, "--memory", memory, "-o", out, check=False)
    # The one wording of a bad budget, as the API says it (memlm.checks.memory_error), showing the text given.
    _one_line_error(proc, str(memlm.checks.memory_error(repr(memory))))
    assert not out.exists()


def test_invalid_utf8_names_the_errors_option(model4_path, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"It was a fine day.\n\nIt was \xff fine.\n")
    expected = f"memlm: error: {bad}: invalid UTF-8 at byte offset 27 (use --errors replace to substitute)"
    out = tmp_path / "out"
    for command in (
        ["train", bad, "--width", 2, "-o", out],
        ["train", bad, "--shard", "-o", out],
        ["instances", bad, "--width", 2, "-o", out],
        ["score", model4_path, bad],
        ["eval", model4_path, bad],
    ):
        assert _one_line_error(run_cli(*command, check=False)) == expected
        run_cli(*command, "--errors", "replace")  # and the option that it names exists


def test_invalid_utf8_is_one_class_wherever_it_is_read(monkeypatch):
    # `except InvalidUtf8Error` catches it all: a corpus, standard input, a command-line argument.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"It was \xff")))
    for read in (cli._read_stdin, lambda: cli._check_argument(os.fsdecode(b"It was \xff"), "PROMPT")):
        with pytest.raises(InvalidUtf8Error) as raised:
            read()
        assert raised.value.offset == 7 and raised.value.option is None


def test_a_prompt_argument_that_is_not_utf8_is_a_one_line_error(model4_path):
    proc = subprocess.run(
        [*_memlm("generate", model4_path), os.fsdecode(b"It was \xff")], capture_output=True, text=True
    )
    assert _one_line_error(proc) == "memlm: error: the PROMPT argument: invalid UTF-8 at byte offset 7"


def test_ctrl_c_stops_a_long_generation_with_130(model4_path):
    args = _memlm("generate", model4_path, "It was", "--max-new-tokens", 2**63, "--stream")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.read(6) == b"It was"  # generating
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        _, stderr = proc.communicate(timeout=10)  # reads what is left, so the pipe cannot block memlm
    finally:
        proc.kill()
    assert proc.returncode == 130 and stderr.decode().strip().splitlines() == ["memlm: interrupted"]
    assert time.perf_counter() - sent < 2.0


def _readme_commands() -> dict[str, set[str]]:
    """The options that the README's command-line section names for each command."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    options: dict[str, set[str]] = {}
    for line in block.splitlines():
        words = line.split("#", 1)[0].split()
        command = words[1]
        options.setdefault(command, set()).update(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", " ".join(words[2:])))
    return options


def _help_options(*command: str) -> set[str]:
    environment = {**os.environ, "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"}
    text = subprocess.run(_memlm(*command, "--help"), capture_output=True, text=True, env=environment).stdout
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", text)) - {"--help"}


def test_the_help_names_the_options_the_readme_names():
    readme = _readme_commands()
    commands = {c for c in readme if not c.startswith("-")}
    top = subprocess.run(_memlm("--help"), capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"})
    # The rows of the help's tables: each command, and the options --version and --help.
    listed = set(re.findall(r"^\W*(\w+)\s{2,}\S", top.stdout, re.MULTILINE)) - {"version", "help"}
    assert listed == commands, top.stdout
    assert "--version" in readme and "--version" in _help_options()
    for command in sorted(commands):
        # The README writes -o, the help also its long name --output.
        assert _help_options(command) - {"--output"} == readme[command], command
