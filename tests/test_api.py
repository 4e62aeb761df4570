"""The public API around the query path: votes and vote shares, windows, instance files, classification,
the names that changed (old ones still work, with a DeprecationWarning) and who may use the core."""

import re

import numpy as np
import pytest

import memlm
from memlm.corpus import read_blocks

from conftest import ROOT, TEST_TEXT, TRAIN_TEXT, run_cli


def test_votes_and_their_shares(model4):
    ids, votes = model4.votes("It was a very")
    assert ids.dtype == np.int64 and votes.dtype == np.float64
    assert list(votes) == sorted(votes, reverse=True) and votes.min() > 0
    everything = model4.predict("It was a very", top_k=0)
    assert everything.ids == ids.tolist() and everything.votes == votes.tolist()
    # Shares are votes over the total of all votes: they sum to 1 over all classes, less over the top k.
    assert sum(everything.shares) == pytest.approx(1.0)
    top = model4.predict("It was a very", top_k=3)
    assert top.shares == pytest.approx([v / votes.sum() for v in votes[:3]])
    assert top.ids == ids[:3].tolist() and sum(top.shares) < 1


def test_old_names_still_work_with_a_deprecation_warning(model4):
    p = model4.predict("Emma", top_k=4)
    with pytest.warns(DeprecationWarning, match="Prediction.shares"):
        assert p.probabilities == p.shares
    with pytest.warns(DeprecationWarning, match="Model.votes"):
        old = model4.distribution("Emma")
    new = model4.votes("Emma")
    assert (old[0] == new[0]).all() and (old[1] == new[1]).all()
    import memlm.evaluation
    import memlm.training

    with pytest.warns(DeprecationWarning, match="partition_memory"):
        assert memlm.training.shard_memory(1 << 30, 1000, 2) == memlm.training.partition_memory(1 << 30, 1000, 2)
    with pytest.warns(DeprecationWarning, match="MIN_PARTITION_BYTES"):
        assert memlm.training.MIN_SHARD_BYTES == memlm.training.MIN_PARTITION_BYTES
    with pytest.warns(DeprecationWarning, match="memlm.scoring.perplexity_of"):
        assert memlm.evaluation.perplexity_of(np.array([-1.0, -1.0])) == pytest.approx(10.0)
    with pytest.warns(DeprecationWarning, match="Model.score"):
        assert memlm.evaluation.score(model4, "It was") == model4.score("It was")
    with pytest.warns(DeprecationWarning, match="Model.perplexity"):
        assert memlm.evaluation.perplexity(model4, "It was") == model4.perplexity("It was")
    with pytest.warns(DeprecationWarning, match="Model.windows"):
        contexts, targets = memlm.evaluation.windows(model4, ["It was"])
    assert (targets == model4.encode("It was")).all()
    with pytest.raises(AttributeError):
        memlm.evaluation.nothing_here  # noqa: B018


def test_windows_pad_each_block_start(model4):
    blocks = read_blocks([TEST_TEXT])[:30]
    contexts, targets = model4.windows(blocks)
    width, pad = model4.width, model4.pad_id
    assert pad == model4.n_ids - 1 == model4.tokenizer.vocab_size
    rows, expected_targets = [], []
    for block in blocks:
        ids = model4.encode(block)
        padded = [pad] * width + ids
        rows.extend(padded[i : i + width] for i in range(len(ids)))
        expected_targets.extend(ids)
    assert contexts.dtype == np.uint32 and contexts.shape == (len(rows), width)
    assert contexts.tolist() == rows and targets.tolist() == expected_targets
    # The same from token ids, and each row is the context `context` gives for the prefix before it.
    tokens, lengths = model4.tokenizer.encode_blocks(blocks)
    from_ids = model4.windows(tokens=tokens, block_lengths=lengths)
    assert (from_ids[0] == contexts).all() and (from_ids[1] == targets).all()
    first = model4.encode(blocks[0])
    for i in range(len(first)):
        assert model4.context(first[:i]) == rows[i]
    # One string is one block; nothing gives no windows.
    assert model4.windows(blocks[0])[0].tolist() == rows[: len(first)]
    assert model4.windows([])[0].shape == (0, width)
    with pytest.raises(memlm.MemlmError):
        model4.windows(blocks, tokens=tokens, block_lengths=lengths)
    with pytest.raises(memlm.MemlmError):
        model4.windows(tokens=tokens)


def test_predict_batch_and_scores_over_windows(model4):
    contexts, targets = model4.windows(read_blocks([TEST_TEXT])[:40])
    classes, votes, depth, distance = model4.predict_batch(contexts, top_k=2)
    assert classes.shape == votes.shape == (len(targets), 2)
    assert depth.shape == distance.shape == (len(targets),)
    log10, context_length, oov = model4.score_windows(contexts, targets)
    assert log10.shape == context_length.shape == oov.shape == targets.shape
    assert (log10 < 0).all() and oov.dtype == np.bool_
    scores = model4.score(" ".join(read_blocks([TEST_TEXT])[:1]))
    n = len(scores)
    assert [s.log10_prob for s in scores] == pytest.approx(log10[:n].tolist())
    assert [s.oov for s in scores] == oov[:n].tolist()


def test_write_instances_is_what_memlm_instances_writes(model4, tmp_path):
    tokens, lengths = model4.tokenizer.encode_blocks(read_blocks([TEST_TEXT]))
    ours, cli = tmp_path / "api.txt", tmp_path / "cli.txt"
    memlm.write_instances(tokens, lengths, ours, 4, model4.tokenizer.vocab_size)
    run_cli("instances", TEST_TEXT, "--width", 4, "-o", cli)
    assert ours.read_bytes() == cli.read_bytes()
    lines = ours.read_text().splitlines()
    assert len(lines) == tokens.size
    assert lines[0].split() == ["_"] * 4 + [str(tokens[0])]
    # The same instances classified through the model: its windows' top-1 predictions.
    totals = model4.classify_file(ours, tmp_path / "out.txt")
    contexts, targets = model4.windows(tokens=tokens, block_lengths=lengths)
    classes = model4.predict_batch(contexts)[0][:, 0]
    assert totals["instances"] == tokens.size and totals["has_classes"]
    assert totals["correct"] == int((classes == targets).sum())
    predicted = [int(line.split()[-1]) for line in (tmp_path / "out.txt").read_text().splitlines()]
    assert predicted == classes.tolist()
    with pytest.raises(memlm.MemlmError, match="width must be between 1 and 64"):
        memlm.write_instances(tokens, lengths, tmp_path / "x.txt", 0, 50257)
    assert not (tmp_path / "x.txt").exists()


def test_only_the_model_class_uses_the_core_object():
    # `Model` (model.py) wraps the core object; nothing else reaches into it, and the benchmarks import
    # nothing from the binding.
    reach_in = re.compile(r"(?<!memlm)\._core\b")
    for path in sorted([*(ROOT / "python" / "memlm").glob("*.py"), *(ROOT / "tests").glob("*.py")]):
        if path.name in ("model.py", "test_api.py"):
            continue
        assert not reach_in.search(path.read_text()), f"{path.relative_to(ROOT)} reaches into the core object"
    uses_binding = re.compile(r"memlm\._core|from memlm import _core|import _core")
    for path in sorted((ROOT / "bench").glob("*.py")):
        assert not uses_binding.search(path.read_text()), f"{path.relative_to(ROOT)} uses the binding directly"


def test_docs_name_no_file_outside_the_repository():
    # Help texts and docstrings stand on their own: no reference to a spec outside the repository.
    for path in sorted([*(ROOT / "python" / "memlm").glob("*.py"), *(ROOT / "tests").glob("*.py")]):
        if path.name != "test_api.py":
            assert "SPEC" not in path.read_text(), path
    for command in ["train", "eval", "score", "generate", "classify", "instances", "merge"]:
        assert "SPEC" not in run_cli(command, "--help").stdout


def test_train_and_save_in_one_call(tmp_path):
    path = tmp_path / "m.memlm"
    model = memlm.train(TRAIN_TEXT, width=3, output=path)
    assert memlm.load(path, verify=True).predict("Emma") == model.predict("Emma")
