"""Every argument is checked before any corpus is read: a bad one fails at once, not after tokenising.

Two witnesses that nothing was read: the progress callback, which hears of every tokenised batch, is
never called on a real corpus; and with a corpus that does not exist, the error is the argument's, not
the missing file's.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import memlm
from memlm._core import Query, Sampling, TrainOptions
from memlm.checks import CORE_WORDS
from memlm.errors import MemlmError

from conftest import TRAIN_TEXT, run_cli

BAD_OPTIONS = [
    (dict(weighting="foo"), 'unknown weighting "foo"'),
    (dict(width=0), "width must be between 1 and 64"),
    (dict(width=65), "width must be between 1 and 64"),
    (dict(algorithms="igtree,nearest"), 'unknown algorithm "nearest"'),
    (dict(memory=0), "memory must be a whole number of bytes from 1 to"),
    (dict(memory=-(1 << 30)), "memory must be a whole number of bytes from 1 to"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_train_checks_its_options_first(tmp_path, options, message):
    calls = []
    with pytest.raises(MemlmError, match=message):
        memlm.train(TRAIN_TEXT, progress=lambda *report: calls.append(report), **options)
    assert calls == []
    with pytest.raises(MemlmError, match=message):
        memlm.train(tmp_path / "missing_corpus.txt", **options)


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_merge_checks_its_options_first(tmp_path, options, message):
    with pytest.raises(MemlmError, match=message):
        memlm.merge([tmp_path / "missing.shard"], **{"width": 4, **options})


def test_train_instances_checks_its_options_first(tmp_path):
    with pytest.raises(MemlmError, match='unknown weighting "foo"'):
        memlm.train_instances(tmp_path / "missing.txt", weighting="foo")
    with pytest.raises(MemlmError, match='unknown algorithm "nearest"'):
        memlm.train_instances(tmp_path / "missing.txt", algorithms=["nearest"])


def bad_outputs(tmp_path):
    """(output path, the path the error must name, the error's type) for outputs that cannot be written."""
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    (tmp_path / "a_folder").mkdir()
    return [
        (tmp_path / "no" / "such" / "m.out", tmp_path / "no" / "such", FileNotFoundError),
        (a_file / "m.out", a_file, NotADirectoryError),
        (tmp_path / "a_folder", tmp_path / "a_folder", IsADirectoryError),
    ]


def writes_to(output, missing_corpus, missing_shard, heard):
    """Every call that writes ``output``, given inputs that must not be read first."""

    def progress(*report):
        heard.append(report)

    return [
        lambda: memlm.train(TRAIN_TEXT, width=3, output=output, progress=progress),
        lambda: memlm.train(missing_corpus, output=output),
        lambda: memlm.make_shard(TRAIN_TEXT, output, progress=progress),
        lambda: memlm.make_shard(missing_corpus, output),
        lambda: memlm.merge([missing_shard], width=4, output=output),
        lambda: memlm.merge_shards([missing_shard], output),
        lambda: memlm.train_instances(missing_corpus, output=output),
    ]


def test_outputs_are_checked_before_any_input_is_read(tmp_path):
    missing_corpus, missing_shard = tmp_path / "missing_corpus.txt", tmp_path / "missing.shard"
    heard = []
    for output, named, error in bad_outputs(tmp_path):
        for attempt in writes_to(output, missing_corpus, missing_shard, heard):
            with pytest.raises(error) as caught:
                attempt()
            assert caught.value.filename == str(named)
    assert heard == []
    # A temporary folder for the build's partitions must exist too.
    with pytest.raises(FileNotFoundError) as caught:
        memlm.train(missing_corpus, memory=1 << 30, temp_dir=tmp_path / "no_temp")
    assert caught.value.filename == str(tmp_path / "no_temp")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_unwritable_folder_fails_first(tmp_path):
    # No one, root included, may create a file in /proc; a folder without write permission stops others.
    folders = [Path("/proc")]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        folders.append(locked)
    try:
        for folder in folders:
            for attempt in writes_to(folder / "m.out", tmp_path / "missing_corpus.txt", tmp_path / "x.shard", []):
                with pytest.raises(PermissionError) as caught:
                    attempt()
                assert caught.value.filename == str(folder)
    finally:
        if len(folders) > 1:
            folders[1].chmod(0o700)


def test_the_command_line_checks_first(tmp_path):
    missing = tmp_path / "missing_corpus.txt"
    cases = [
        (("train", missing, "--width", 0, "-o", tmp_path / "m.memlm"), "width must be between 1 and 64"),
        (("train", missing, "--weighting", "foo", "-o", tmp_path / "m.memlm"), 'unknown weighting "foo"'),
        (("train", missing, "-o", tmp_path / "nowhere" / "m.memlm"), "nowhere"),
        (("train", missing, "--shard", "-o", tmp_path / "nowhere" / "m.shard"), "nowhere"),
        (("merge", tmp_path / "missing.shard", "-o", tmp_path / "nowhere" / "m.memlm"), "nowhere"),
        (("instances", missing, "--width", 65, "-o", tmp_path / "i.txt"), "width must be between 1 and 64"),
        (("instances", missing, "-o", tmp_path / "nowhere" / "i.txt"), "nowhere"),
        (("train", "--instances", missing, "--algorithms", "x", "-o", tmp_path / "m.memlm"), 'unknown algorithm "x"'),
    ]
    for args, message in cases:
        proc = run_cli(*args, check=False)
        assert proc.returncode == 1, args
        assert message in proc.stderr and "missing_corpus" not in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_evaluation_checks_the_classifier_first(model4, tmp_path):
    from memlm.evaluation import evaluate

    missing = tmp_path / "missing_test.txt"
    with pytest.raises(MemlmError, match="instance base"):
        evaluate(model4, [missing], algorithm="tribl2")
    with pytest.raises(MemlmError, match="k must be at least 1"):
        evaluate(model4, [missing], algorithm="igtree", k=0)
    with pytest.raises(MemlmError, match='unknown vote "x"'):
        model4.check_query("igtree", vote="x")
    model4.check_query("igtree", k=3, vote="inverse_distance")


def test_classification_checks_its_output_first(model4, tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        model4.classify_file(tmp_path / "missing_instances.txt", tmp_path / "nowhere" / "out.txt")
    assert caught.value.filename == str(tmp_path / "nowhere")


# -- one wording per error: the core's -------------------------------------------------------------------

#: For each option of CORE_WORDS: the core's type, an out-of-range value within 64 bits (the core's to
#: refuse), and that value as the core shows it.
CORE_REFUSES = {
    "width": (TrainOptions, 65, "65"),
    "k": (Query, 0, "0"),
    "top_k": (Query, -1, "-1"),
    "decay": (Query, -0.5, "-0.5"),
    "temperature": (Sampling, -0.5, "-0.5"),
    "top_p": (Sampling, 1.5, "1.5"),
}


def test_python_says_the_cores_words():
    # Python says CORE_WORDS only for values the binding cannot show as given: each must be the core's own
    # sentence, or one error would have two wordings.
    assert CORE_REFUSES.keys() == CORE_WORDS.keys()
    for option, (kind, value, shown) in CORE_REFUSES.items():
        with pytest.raises(MemlmError) as raised:
            kind(**{option: value})
        assert str(raised.value) == CORE_WORDS[option].format(shown)
    with pytest.raises(MemlmError) as raised:
        Sampling(top_k=-1)
    assert str(raised.value) == CORE_WORDS["top_k"].format("-1")


def test_numbers_beyond_64_bits_are_refused_as_given(model4):
    huge = 2**70
    for arguments, option in [(dict(k=-huge), "k"), (dict(top_k=-huge), "top_k"), (dict(decay=10**400), "decay")]:
        with pytest.raises(MemlmError) as raised:
            model4.predict("It was", **arguments)
        assert str(raised.value) == CORE_WORDS[option].format(arguments[option])
    for arguments, option in [(dict(top_k=-huge), "top_k"), (dict(temperature=-(10**400)), "temperature")]:
        with pytest.raises(MemlmError) as raised:
            model4.generate("It was", **arguments)
        assert str(raised.value) == CORE_WORDS[option].format(arguments[option])
    with pytest.raises(MemlmError) as raised:
        model4.generate("It was", top_p=10**400)
    assert str(raised.value) == CORE_WORDS["top_p"].format(10**400)
    with pytest.raises(MemlmError) as raised:
        memlm.train(TRAIN_TEXT, width=huge)
    assert str(raised.value) == CORE_WORDS["width"].format(huge)


def test_ids_in_arrays_are_refused_in_the_cores_words(model4):
    # Arrays (contexts, targets, tokens) are checked in Python before they become uint32: the same sentences
    # as the binding's for a list, after the argument's name.
    for bad in ([-1], [model4.n_ids]):
        with pytest.raises(MemlmError) as core:
            model4.predict(bad)
        with pytest.raises(MemlmError) as python:
            model4.predict_batch(np.array([bad * model4.width]))
        assert str(python.value) == f"contexts: {core.value}"
