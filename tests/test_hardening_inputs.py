"""Inputs read safely (issue 12): outputs that are inputs refused before any work (9), text from pipes,
FIFOs and stdin (16), and over-long blocks tokenised in pieces of bounded memory (17)."""

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import memlm
from memlm.corpus import read_blocks
from memlm.tokenization import LONG_BLOCK_CHARS, TokenizerSpec, split_long

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli

# -- 9: an output that is one of the inputs ----------------------------------------------------------------


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memlm: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_bytes(TEST_TEXT.read_bytes())
    return path


def test_train_refuses_to_write_over_its_corpus(corpus, tmp_path):
    before = corpus.read_bytes()
    _one_line_error(run_cli("train", corpus, "-o", corpus, "--width", 2, check=False), "also an input")
    # The same file under other names: a symlink and a hard link.
    (tmp_path / "link.txt").symlink_to(corpus)
    os.link(corpus, tmp_path / "hard.txt")
    proc = run_cli("train", tmp_path / "link.txt", "-o", tmp_path / "hard.txt", check=False)
    _one_line_error(proc, "hard.txt", "the same file as the input", "link.txt")
    proc = run_cli("train", corpus, "-o", tmp_path / "link.txt", check=False)
    _one_line_error(proc, "link.txt", "corpus.txt")
    # A file inside a corpus folder, and the tokenizer file.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_bytes(before)
    _one_line_error(run_cli("train", folder, "-o", folder / "a.txt", check=False), "also an input")
    tokenizer = tmp_path / "tok.json"
    tokenizer.write_bytes(TokenizerSpec.from_file().json.encode())
    _one_line_error(run_cli("train", corpus, "--tokenizer", tokenizer, "-o", tokenizer, check=False), "tok.json")
    assert corpus.read_bytes() == before == (folder / "a.txt").read_bytes()
    assert tokenizer.read_text() == TokenizerSpec.from_file().json
    with pytest.raises(memlm.MemlmError, match="also an input"):
        memlm.train(corpus, width=2, output=corpus)
    with pytest.raises(memlm.MemlmError, match="the same file as the input"):
        memlm.train([str(tmp_path / "link.txt")], width=2, output=tmp_path / "hard.txt")
    assert corpus.read_bytes() == before
    # A new output, or another existing file, is fine.
    memlm.train(corpus, width=2, output=tmp_path / "model.memlm")


def test_shards_merges_and_instances_refuse_their_inputs(corpus, tmp_path):
    shard = tmp_path / "p.shard"
    memlm.make_shard(corpus, shard)
    shard_bytes = shard.read_bytes()
    with pytest.raises(memlm.MemlmError, match="also an input"):
        memlm.make_shard(corpus, corpus)
    _one_line_error(run_cli("merge", shard, "-o", shard, check=False), "p.shard", "also an input")
    _one_line_error(run_cli("merge", shard, "--shard", "-o", shard, check=False), "also an input")
    with pytest.raises(memlm.MemlmError, match="also an input"):
        memlm.merge([shard], width=2, output=shard)
    with pytest.raises(memlm.MemlmError, match="also an input"):
        memlm.merge_shards([shard, shard], shard)
    assert shard.read_bytes() == shard_bytes
    # `memlm instances X -o X`, then `train --instances` and `classify -o` over their inputs.
    before = corpus.read_bytes()
    _one_line_error(run_cli("instances", corpus, "--width", 2, "-o", corpus, check=False), "also an input")
    assert corpus.read_bytes() == before
    instances = tmp_path / "inst.txt"
    run_cli("instances", corpus, "--width", 2, "-o", instances)
    instance_bytes = instances.read_bytes()
    proc = run_cli("train", "--instances", instances, "-o", instances, check=False)
    _one_line_error(proc, "also an input")
    with pytest.raises(memlm.MemlmError, match="also an input"):
        memlm.train_instances(instances, output=instances)
    model = tmp_path / "m.memlm"
    run_cli("train", "--instances", instances, "-o", model)
    model_bytes = model.read_bytes()
    _one_line_error(run_cli("classify", model, "--instances", instances, "-o", instances, check=False), "inst.txt")
    _one_line_error(run_cli("classify", model, "--instances", instances, "-o", model, check=False), "m.memlm")
    with pytest.raises(memlm.MemlmError, match="also an input"):
        memlm.load(model).classify_file(instances, model)
    assert instances.read_bytes() == instance_bytes and model.read_bytes() == model_bytes


# -- 16: text from pipes, FIFOs and stdin ------------------------------------------------------------------


def _feed_fifo(path: Path, data: bytes) -> threading.Thread:
    """Makes a FIFO at ``path`` and writes ``data`` into it from a thread, once a reader opens it."""
    os.mkfifo(path)

    def write() -> None:
        with open(path, "wb") as fifo:
            fifo.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _eval_json(*args) -> dict:
    result = json.loads(run_cli("eval", *args, "--json").stdout)
    return {key: result[key] for key in ("tokens", "correct", "oov", "perplexity")}


def test_train_score_and_eval_read_fifos(model4_path, tmp_path):
    expected = _eval_json(model4_path, TEST_TEXT)
    # eval: plain text and gzip through FIFOs (gzip is recognised by its first bytes, not by a name).
    fifo = tmp_path / "test.fifo"
    writer = _feed_fifo(fifo, TEST_TEXT.read_bytes())
    assert _eval_json(model4_path, fifo) == expected
    writer.join(10)
    gz_fifo = tmp_path / "test-gz.fifo"
    writer = _feed_fifo(gz_fifo, gzip.compress(TEST_TEXT.read_bytes()))
    assert _eval_json(model4_path, gz_fifo) == expected
    writer.join(10)
    # score
    expected_scores = run_cli("score", model4_path, TEST_TEXT).stdout
    writer = _feed_fifo(tmp_path / "score.fifo", TEST_TEXT.read_bytes())
    assert run_cli("score", model4_path, tmp_path / "score.fifo").stdout == expected_scores
    writer.join(10)
    # train: the same model as from the file.
    writer = _feed_fifo(tmp_path / "train.fifo", gzip.compress(TEST_TEXT.read_bytes()))
    run_cli("train", tmp_path / "train.fifo", "--width", 3, "-o", tmp_path / "fifo.memlm")
    writer.join(10)
    from_fifo, from_file = memlm.load(tmp_path / "fifo.memlm"), memlm.train(TEST_TEXT, width=3)
    for key in ("training_instances", "nodes", "symbols", "gain_ratio"):
        assert from_fifo.info()[key] == from_file.info()[key]
    contexts, _ = from_file.windows(read_blocks([TRAIN_TEXT])[:50])
    assert np.array_equal(from_fifo.predict_batch(contexts, top_k=3)[0], from_file.predict_batch(contexts, top_k=3)[0])


def test_process_substitution_and_stdin(model4_path, tmp_path):
    expected = _eval_json(model4_path, TEST_TEXT)
    gz = tmp_path / "test.txt.gz"
    gz.write_bytes(gzip.compress(TEST_TEXT.read_bytes()))
    memlm_cmd = f"'{sys.executable}' -m memlm"
    for command in [
        f"{memlm_cmd} eval '{model4_path}' <(zcat '{gz}') --json",
        f"{memlm_cmd} eval '{model4_path}' <(cat '{gz}') --json",
        f"zcat '{gz}' | {memlm_cmd} eval '{model4_path}' - --json",
    ]:
        proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        assert proc.returncode == 0, (command, proc.stderr)
        result = json.loads(proc.stdout)
        assert {key: result[key] for key in expected} == expected, command
    expected_scores = run_cli("score", model4_path, TEST_TEXT).stdout
    command = f"{memlm_cmd} score '{model4_path}' <(zcat '{gz}')"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == expected_scores, proc.stderr
    command = f"{memlm_cmd} train <(zcat '{gz}') --width 3 -o '{tmp_path / 'sub.memlm'}'"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run_cli("train", "-", "--width", 3, "-o", tmp_path / "stdin.memlm", stdin=TEST_TEXT.read_text())
    for path in ("sub.memlm", "stdin.memlm"):
        assert memlm.load(tmp_path / path).info()["nodes"] == memlm.train(TEST_TEXT, width=3).info()["nodes"]


def test_a_gz_name_that_is_not_gzip_is_a_clear_error(model4_path, tmp_path):
    fake = tmp_path / "fake.txt.gz"
    fake.write_text("plain text, not gzip\n")
    _one_line_error(run_cli("eval", model4_path, fake, check=False), "fake.txt.gz", "not a valid gzip file")
    truncated = tmp_path / "cut.txt.gz"
    truncated.write_bytes(gzip.compress(TEST_TEXT.read_bytes())[:5000])
    _one_line_error(run_cli("eval", model4_path, truncated, check=False), "cut.txt.gz", "not a valid gzip file")


# -- 17: long blocks in pieces -----------------------------------------------------------------------------


def test_split_long_cuts_before_a_space_after_a_non_space():
    text = " ".join(read_blocks([TRAIN_TEXT]))
    for limit in (40, 1000, LONG_BLOCK_CHARS):
        pieces = split_long(text, limit)
        assert "".join(pieces) == text
        assert all(len(piece) <= limit for piece in pieces)
        for before, piece in zip(pieces, pieces[1:], strict=False):
            assert piece.startswith(" ") and not before[-1].isspace()
    assert split_long("short", 40) == ["short"]
    # No space to cut at: cut at the limit (the only case where the pieces may tokenise differently).
    assert split_long("x" * 100, 40) == ["x" * 40, "x" * 40, "x" * 20]
    # Runs of spaces: the cut goes before the run, which stays whole in the next piece.
    assert split_long("aaa    bbb", 8) == ["aaa", "    bbb"]


def test_pieces_give_the_ids_of_one_call():
    spec = TokenizerSpec.from_file()
    text = " ".join(read_blocks([TRAIN_TEXT]))  # ~400,000 characters on one line: several pieces
    assert len(text) > 4 * LONG_BLOCK_CHARS
    whole = spec.tokenizer.encode(text, add_special_tokens=False).ids
    for limit in (50, 1000, LONG_BLOCK_CHARS):
        pieces = split_long(text, limit)
        assert [i for piece in pieces for i in spec.tokenizer.encode(piece, add_special_tokens=False).ids] == whole
    # Through the streamed encoder the block stays one block: ids concatenated, one length.
    tokens, lengths = spec.encode_blocks(["Short block.", text, "Another one."])
    short, other = spec.encode("Short block."), spec.encode("Another one.")
    assert lengths.tolist() == [len(short), len(whole), len(other)]
    assert tokens.tolist() == short + whole + other
    assert spec.encode(text) == whole
    # So is the model's windowing: one block, padded once.
    model = memlm.train(TRAIN_TEXT, width=3)
    contexts, targets = model.windows([text])
    assert targets.tolist() == whole and (contexts == model.pad_id).sum() == 3 + 2 + 1


_PEAK_RSS = """
import resource, sys
import memlm
tokens, lengths, _, _ = memlm.tokenize(sys.argv[1])
print(tokens.size, lengths.size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _tokenize_peak(path: Path) -> tuple[int, int, int]:
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True, text=True, check=True)
    tokens, blocks, peak = map(int, proc.stdout.split())
    return tokens, blocks, peak


def test_a_corpus_on_one_line_takes_the_memory_of_normal_lines(tmp_path):
    # ~4.8 MB of text, as normal lines and as one line (one block). Tokenised in one call, the single
    # line would take ~200 bytes per character (~1 GB); in pieces it takes what the lines take.
    text = TRAIN_TEXT.read_text() * 12
    lines, one_line = tmp_path / "lines.txt", tmp_path / "one_line.txt"
    lines.write_text(text)
    one_line.write_text(text.replace("\n", " "))
    tokens_lines, blocks_lines, peak_lines = _tokenize_peak(lines)
    tokens_one, blocks_one, peak_one = _tokenize_peak(one_line)
    assert blocks_one == 1 and blocks_lines > 1000
    assert abs(tokens_one - tokens_lines) < tokens_lines // 50
    assert peak_one < 2 * peak_lines, (peak_one, peak_lines)
