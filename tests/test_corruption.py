"""Issue 12's query-safety items, through the Python API: damaged models opened without verify give
clean errors or the right answers, never a panic (1); huge top_k is clamped (2); ``load(mmap=False)``
is immune to the file changing under it (3); a FIFO or a folder as the model path is refused at once
(4); sampling and k-NN numerics (13)."""

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import memlm
from bench.corruption import SMALL_SECTIONS, bulk_sections, damage, section_table
from memlm import MemlmError, ModelFormatError
from memlm._core import BULK_SECTIONS, SECTIONS

from conftest import TEST_TEXT, TRAIN_TEXT

ALGORITHMS = (("igtree", {}), ("tribl2", {"k": 1}), ("ib1", {"k": 2, "vote": "inverse_distance"}))


@pytest.fixture(scope="module")
def knn_model_path(tmp_path_factory):
    """A W=4 model with the instance base (all three algorithms)."""
    source = tmp_path_factory.mktemp("corpus") / "part.txt"
    source.write_text(TRAIN_TEXT.read_text()[:60_000])
    model = memlm.train([source], width=4, algorithms=("igtree", "tribl2", "ib1"))
    path = tmp_path_factory.mktemp("models") / "knn4.memlm"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def contexts(knn_model_path):
    model = memlm.load(knn_model_path)
    contexts, targets = model.windows([TEST_TEXT.read_text()[:1500]])
    return contexts[:40], targets[:40]


def _answers(model, contexts, targets):
    """Every query kind's answer on the fixed contexts (a damaged model raises MemlmError instead)."""
    out = []
    for algorithm, knn in ALGORITHMS:
        p = model.predict(contexts[0].tolist(), top_k=0, algorithm=algorithm, **knn)
        out.append((list(p.ids), list(p.votes), p.depth, p.distance))
        batch = model.predict_batch(contexts, top_k=3, algorithm=algorithm, **knn)
        out.append([a.tolist() for a in batch])
        out.append(model.generate("It was", max_new_tokens=6, algorithm=algorithm, **knn))
        out.append(model.generate("It was", 6, do_sample=True, seed=3, algorithm=algorithm, **knn))
    out.append([a.tolist() for a in model.score_windows(contexts, targets)])
    out.append(model.probabilities(contexts[1].tolist()).tolist())
    return out


# -- 1: damaged bulk sections, loaded without verify ----------------------------------------------


def test_damaged_bulk_sections_give_clean_errors_never_panics(knn_model_path, contexts, tmp_path):
    good = knn_model_path.read_bytes()
    reference = _answers(memlm.load(knn_model_path), *contexts)
    rng = random.Random(1)
    errors = 0
    for i in range(24):
        data, what = damage(good, rng)
        path = tmp_path / f"damaged-{i}.memlm"
        path.write_bytes(data)
        try:
            got = _answers(memlm.load(path), *contexts)
        except ModelFormatError as e:  # the first query of a damaged trie checks its checksums
            assert "corrupt" in str(e) and str(path) in str(e), e
            errors += 1
            continue
        assert got == reference, f"a wrong answer after {what}"
    assert errors > 0


def test_each_trie_is_checked_at_its_first_query_only(knn_model_path, contexts, tmp_path):
    """Damage in the instance base leaves IGTree queries alone; the k-NN ones raise, every time."""
    good = knn_model_path.read_bytes()
    base = [s for s in section_table(good) if SECTIONS[s[0]].startswith("Base") and s[2] > 0]  # its trie
    ident, offset, length = max(base, key=lambda s: s[2])
    data = bytearray(good)
    data[offset + length // 2] ^= 0x10
    path = tmp_path / "base.memlm"
    path.write_bytes(data)
    model, clean = memlm.load(path), memlm.load(knn_model_path)
    ctx = contexts[0][2].tolist()
    assert model.predict(ctx, top_k=0) == clean.predict(ctx, top_k=0)
    for _ in range(2):
        with pytest.raises(ModelFormatError, match=f"checksum mismatch in section {SECTIONS[ident]}"):
            model.predict(ctx, algorithm="tribl2")
    with pytest.raises(ModelFormatError):
        memlm.load(path, verify=True)


def test_the_bulk_sections_are_found(knn_model_path):
    # The benchmark uses the public API only, so it keeps its own list of the sections checked at open.
    assert set(SECTIONS) - BULK_SECTIONS == SMALL_SECTIONS
    found = {SECTIONS[s[0]] for s in bulk_sections(knn_model_path.read_bytes())}
    tries = {"Labels16", "ChildRecords", "DistRecords", "DistBytes"}
    assert tries | {"Base" + name for name in tries} | {"TailRecords", "TailValues16"} <= found


# -- 2: huge top_k ----------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [10**9, 2**62, 2**63, 2**64, 2**200])
def test_huge_top_k_keeps_every_class_and_no_more(knn_model_path, contexts, top_k):
    model = memlm.load(knn_model_path)
    # Unknown ids match nothing: the IGTree answers with the root, which holds every class.
    classes = len(model.predict([2**32 - 1] * 4, top_k=0).ids)
    for algorithm, knn in ALGORITHMS:
        ids, votes, depth, distance = model.predict_batch(contexts[0][:5], top_k=top_k, algorithm=algorithm, **knn)
        assert ids.shape == votes.shape == (5, classes)
        prefix = contexts[0][0].tolist()
        everything = model.predict(prefix, top_k=top_k, algorithm=algorithm, **knn)
        assert list(everything.ids) == list(model.predict(prefix, top_k=0, algorithm=algorithm, **knn).ids)


@pytest.mark.parametrize("top_k", [-1, -(2**63), -(2**64)])
def test_negative_top_k_is_an_error(knn_model_path, contexts, top_k):
    with pytest.raises(MemlmError, match="top_k"):
        memlm.load(knn_model_path).predict_batch(contexts[0][:2], top_k=top_k)


# -- 3: mmap=False ----------------------------------------------------------------------------------


def test_a_model_read_into_memory_survives_its_file_being_truncated_or_rewritten(knn_model_path, contexts, tmp_path):
    path = tmp_path / "held.memlm"
    shutil.copyfile(knn_model_path, path)
    model = memlm.load(path, mmap=False)
    reference = _answers(memlm.load(knn_model_path), *contexts)
    os.truncate(path, 100)
    assert _answers(model, *contexts) == reference
    path.write_bytes(b"\0" * 1000)  # rewritten in place (same inode)
    assert _answers(model, *contexts) == reference
    with pytest.raises(ModelFormatError):
        memlm.load(path, mmap=False)
    assert memlm.load(knn_model_path, mmap=False).verify() is None


def test_a_mapped_model_must_not_be_truncated(knn_model_path, tmp_path):
    """The mmap contract (as KenLM's and LMDB's): a file truncated under a mapped model kills the process
    that reads the lost pages; memlm's writers rename, which is safe (the map keeps the old file)."""
    held = tmp_path / "held.memlm"
    shutil.copyfile(knn_model_path, held)
    script = textwrap.dedent(
        f"""
        import os, memlm
        model = memlm.load({str(held)!r})
        os.truncate({str(held)!r}, 0)
        model.predict([1, 2, 3])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGBUS, proc.stderr
    # Replacing the file by a rename, as memlm.save does, leaves a loaded model working.
    shutil.copyfile(knn_model_path, held)
    model = memlm.load(held)
    before = model.predict([1, 2, 3], top_k=0)
    memlm.load(knn_model_path).save(held)
    assert model.predict([1, 2, 3], top_k=0) == before


# -- 4: FIFOs and folders ---------------------------------------------------------------------------


@pytest.mark.parametrize("mmap", [True, False])
def test_a_fifo_or_a_folder_as_the_model_is_refused_at_once(tmp_path, mmap):
    fifo = tmp_path / "fifo.memlm"
    os.mkfifo(fifo)
    # No writer ever opens the FIFO: a blocking open would hang here.
    with pytest.raises(OSError) as caught:
        memlm.load(fifo, mmap=mmap)
    assert caught.value.filename == str(fifo) and caught.value.strerror == "not a regular file (a FIFO)"
    with pytest.raises(IsADirectoryError) as caught:
        memlm.load(tmp_path, mmap=mmap)
    assert caught.value.filename == str(tmp_path)
    with pytest.raises(OSError, match="not a regular file"):
        memlm.load("/dev/null", mmap=mmap)
    with pytest.raises(FileNotFoundError):
        memlm.load(tmp_path / "missing.memlm", mmap=mmap)
    # A file whose size the file system does not tell (procfs) or that it cannot map is read: a format error.
    with pytest.raises(ModelFormatError, match="not a memlm model file"):
        memlm.load("/proc/self/status", mmap=mmap)
    empty = tmp_path / "empty.memlm"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="not a memlm model file"):
        memlm.load(empty, mmap=mmap)


# -- 13: numerics -----------------------------------------------------------------------------------


def test_tiny_temperatures_sample_from_the_best_votes(knn_model_path):
    model = memlm.load(knn_model_path)
    for temperature in (0.005, 1e-300):
        text = model.generate("It was a", 12, do_sample=True, temperature=temperature, top_k=0, seed=2)
        assert isinstance(text, str) and text
    greedy = model.generate("It was a", 12)
    assert model.generate("It was a", 12, do_sample=True, temperature=1e-300, top_k=1, seed=2) == greedy
    for temperature in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(MemlmError, match="temperature"):
            model.generate("It was", do_sample=True, temperature=temperature)


def test_decay_is_finite_and_votes_never_nan(knn_model_path, contexts):
    model = memlm.load(knn_model_path)
    for decay in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(MemlmError, match="decay"):
            model.predict("It was", algorithm="ib1", vote="exponential_decay", decay=decay)
    for decay in (1e-300, 1e308):
        _, votes, _, _ = model.predict_batch(
            contexts[0], top_k=5, algorithm="ib1", k=3, vote="exponential_decay", decay=decay
        )
        assert np.isfinite(votes).all() and (votes >= 0).all()
