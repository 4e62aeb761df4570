"""Issue 12, round 4 (section 8): arguments refused like their kind everywhere, from Python and the
command line alike, and one shape for each error."""

import itertools
import re

import numpy as np
import pytest
from rich.console import Console
from test_hardening_cli import _one_line_error

import memlm
from memlm import progress
from memlm.corpus import read_blocks
from memlm.progress import BuildProgress, parse_size

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli


def test_a_stop_string_that_is_not_valid_text_is_refused(model4, model4_path):
    with pytest.raises(memlm.MemlmError, match=re.escape(r"a stop string is not valid Unicode: a lone surrogate")):
        model4.generate("It", stop=["ok", "\ud800"])
    proc = run_cli("generate", model4_path, "It", "--stop", b"\xff".decode("utf-8", "surrogateescape"), check=False)
    assert _one_line_error(proc) == "memlm: error: the --stop argument: invalid UTF-8 at byte offset 0"


def test_instances_with_a_width_is_refused(tmp_path):
    instances = tmp_path / "i.txt"
    instances.write_text("a b c\nb c d\n")
    out = tmp_path / "x.memlm"
    proc = run_cli("train", "--instances", instances, "--width", 3, "-o", out, check=False)
    _one_line_error(proc, "--width or --provenance: the instance file's columns give the width")
    assert not out.exists()
    assert "wrote" in run_cli("train", "--instances", instances, "-o", out).stderr


@pytest.mark.parametrize("value", ["4.0", " 4", "4 ", "1e1", "0x4"])
def test_whole_number_options_take_whole_numbers_only(model4_path, tmp_path, value):
    # As from Python (width=4.0 is refused): a usage error naming the option, before any work.
    for args in (
        ["train", TRAIN_TEXT, "--width", value, "-o", tmp_path / "m.memlm"],
        ["generate", model4_path, "It", "-k", value],
        ["generate", model4_path, "It", "--max-new-tokens", value],
    ):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 2 and f"{value!r} is not a whole number" in proc.stderr, (args, proc.stderr)
    assert run_cli("generate", model4_path, "It", "--max-new-tokens", "+2").returncode == 0


def test_algorithms_must_name_one():
    for algorithms in ((), []):
        with pytest.raises(memlm.MemlmError, match="algorithms must name at least one of igtree, tribl2, ib1"):
            memlm.train(TEST_TEXT, algorithms=algorithms)


def test_train_token_ids_needs_a_tokenizer_spec():
    with pytest.raises(memlm.MemlmError, match="tokenizer must be a TokenizerSpec .*, got NoneType"):
        memlm.train_token_ids(np.array([1, 2, 3]), np.array([3]), None, width=2)


def test_the_perplexity_of_no_tokens_is_an_error(model4, model4_path):
    for text in ("", "\n\n  \n"):
        with pytest.raises(memlm.MemlmError, match="no tokens to score"):
            model4.perplexity(text)
    assert model4.score("") == []
    proc = run_cli("score", model4_path, "-", stdin="", check=False)
    assert _one_line_error(proc) == "memlm: error: no tokens to score: the perplexity of no text is undefined"
    # Tokens that are all OOV have a perplexity, and none without them: nan, not a number that looks measured.
    totals = memlm.scoring.perplexities(np.array([-2.0]), np.array([True]))
    assert totals["perplexity"] == pytest.approx(100.0) and np.isnan(totals["perplexity_excluding_oov"])


def test_memory_sizes_up_to_the_largest(tmp_path):
    assert parse_size("7EiB") == 7 << 60 and parse_size("1P") == 1 << 50
    message = "memory must be a whole number of bytes from 1 to 2**63 - 1 (8 EiB less one byte), got '8EiB'"
    with pytest.raises(memlm.MemlmError, match=re.escape(message)):
        parse_size("8EiB")
    proc = run_cli("train", TRAIN_TEXT, "--memory", "8EiB", "-o", tmp_path / "m.memlm", check=False)
    assert _one_line_error(proc) == f"memlm: error: {message}"


def test_a_phase_is_reported_done_once(monkeypatch, capsys):
    clock = itertools.count(step=2.0)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with BuildProgress(Console(stderr=True, force_terminal=False)) as report:
        report("reading and tokenising", 0, 1000)
        report("reading and tokenising", 1000, 1000)
        report("reading and tokenising", 1000, 1000)  # as the tokeniser may report the end twice
    assert capsys.readouterr().err == "memlm: reading and tokenising: done in 2.0 s\n"


def test_a_masked_array_is_refused(model4):
    contexts = np.ma.masked_array([[1, 2, 3, 4]], mask=[[0, 1, 0, 0]])
    message = "contexts is a masked array, whose mask would be ignored: give a plain array of the ids to use"
    with pytest.raises(memlm.MemlmError, match=re.escape(message)):
        model4.predict_batch(contexts)


@pytest.mark.parametrize("ids", [[-1], [10**6], [2**70], ["a"], [1.5], [True], np.array([-1])])
def test_bad_ids_are_one_shape_in_predict_context_and_decode(model4, ids):
    messages = set()
    for call in (model4.predict, model4.context, model4.decode):
        with pytest.raises(memlm.MemlmError) as raised:
            call(ids)
        messages.add(str(raised.value))
    assert len(messages) == 1 and not messages.pop().startswith("ids: ")


def test_a_progress_that_cannot_be_called_is_refused_before_any_work(tmp_path):
    missing = tmp_path / "missing.txt"  # never read: the argument is refused first
    message = "progress must be a function (or None), got 5"
    for call in (
        lambda: memlm.train(missing, progress=5),
        lambda: memlm.train_token_ids(np.array([1]), np.array([1]), memlm.TokenizerSpec.from_file(), progress=5),
        lambda: memlm.train_instances(missing, progress=5),
        lambda: memlm.make_shard(missing, tmp_path / "s.shard", progress=5),
        lambda: memlm.merge([missing], progress=5),
    ):
        with pytest.raises(memlm.MemlmError, match=re.escape(message)):
            call()
    with pytest.raises(memlm.MemlmError, match=re.escape("status must be a function (or None), got 'x'")):
        memlm.train_instances(missing, status="x")


def test_block_lengths_in_a_list_are_shown_as_given(model4):
    tokens = np.arange(4)
    for lengths, message in [
        ([2**64, 4], "block_lengths hold a length beyond 2**64 - 1 (18446744073709551616)"),
        ([2**64 - 1, 4], "block lengths add up to more than 2^64 but 4 tokens were given"),  # not "dtype float64"
        ([True, 3], "block_lengths must be whole numbers, got True"),  # not the length 1
        ((2.0, 2), "block_lengths must be whole numbers, got 2.0"),
    ]:
        with pytest.raises(memlm.MemlmError, match=re.escape(message)):
            model4.windows(tokens=tokens, block_lengths=lengths)
    assert model4.windows(tokens=tokens, block_lengths=[np.int64(2), 2])[1].tolist() == [0, 1, 2, 3]


def test_text_field_is_a_name(tmp_path):
    for call in (lambda: memlm.train(TEST_TEXT, text_field=None), lambda: read_blocks([TEST_TEXT], None)):
        with pytest.raises(memlm.MemlmError, match=re.escape("text_field must be a name (a str), got None")):
            call()


def test_paths_of_the_wrong_type_are_refused_naming_the_argument(tmp_path):
    """A number, bytes or None where a path must be: a MemlmError naming the argument, not Python's TypeError."""
    for call, message in [
        (lambda: memlm.train(TEST_TEXT, temp_dir=3), "temp_dir must be a path (a str or an os.PathLike), got 3"),
        (lambda: memlm.train(TEST_TEXT, output=3), "output must be a path (a str or an os.PathLike), got 3"),
        (lambda: memlm.tokenize(3), "sources must be a path or an iterable of paths, got 3"),
        (lambda: memlm.merge_shards(None, tmp_path / "s.shard"), "paths must be a path or an iterable of paths"),
        (lambda: memlm.train([TEST_TEXT, 3]), "each of the sources must be a path (a str or an os.PathLike), got 3"),
        (lambda: memlm.train(None), "sources must be a path or an iterable of paths, got None"),
        (lambda: memlm.make_shard(b"/x", tmp_path / "s.shard"), "sources must be a path or an iterable of paths"),
    ]:
        with pytest.raises(memlm.MemlmError, match=re.escape(message)):
            call()
