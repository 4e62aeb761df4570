"""Shards and merging: a model merged from shards (or from a model that kept its tokens plus a shard) is
the model trained on the concatenated corpus."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

import memlm
from memlm.errors import MemlmError, ModelFormatError, TokenizerMismatchError

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli


def answers(model: memlm.Model) -> tuple:
    """Everything a query can see: sizes, weights and the top-5 of every context of the test text."""
    contexts, _ = model.windows(memlm.corpus.read_blocks([TEST_TEXT])[:200])
    classes, votes, depth, _ = model.predict_batch(contexts, top_k=5)
    info = model.info()
    # "other" holds the metadata, which names the sources and so differs.
    parts = sorted((k, v) for k, v in info["size_breakdown"].items() if k != "other")
    sizes = (info["nodes"], info["training_instances"], tuple(parts))
    return sizes, info["gain_ratio"], classes.tolist(), votes.tolist(), depth.tolist()


@pytest.mark.parametrize(("width", "algorithms"), [(4, "igtree,tribl2"), (16, "igtree")])
def test_merged_shards_equal_the_model_of_the_concatenated_corpus(tmp_path, width, algorithms):
    first, second = tmp_path / "emma.shard", tmp_path / "persuasion.shard"
    assert memlm.make_shard(TRAIN_TEXT, first)["tokens"] > 50_000
    memlm.make_shard(TEST_TEXT, second)
    merged = memlm.merge([first, second], width=width, algorithms=algorithms)
    whole = memlm.train([TRAIN_TEXT, TEST_TEXT], width=width, algorithms=algorithms)
    assert answers(merged) == answers(whole)
    assert merged.metadata["merged_from"] == [str(first), str(second)]
    # The order matters as it does for one corpus (first occurrences break ties), and the test can fail:
    # the model of the first shard alone answers otherwise.
    assert answers(memlm.merge([first], width=width)) != answers(whole)
    # Shards merge into shards too.
    both = tmp_path / "both.shard"
    memlm.merge_shards([first, second], both)
    assert answers(memlm.merge([both], width=width, algorithms=algorithms)) == answers(whole)


def test_a_model_that_kept_its_tokens_takes_new_text(tmp_path):
    old = memlm.train(TRAIN_TEXT, width=4, keep_tokens=True)
    old_path, new_text = tmp_path / "old.memlm", tmp_path / "new.shard"
    old.save(old_path)
    assert old.info()["size_breakdown"]["training tokens"] > 0
    memlm.make_shard(TEST_TEXT, new_text)
    grown = memlm.merge([old_path, new_text], width=4)
    assert answers(grown) == answers(memlm.train([TRAIN_TEXT, TEST_TEXT], width=4))


def test_bad_merges_are_clear_errors(tmp_path, model4_path):
    with pytest.raises(ModelFormatError, match="no training tokens"):
        memlm.merge([model4_path])
    with pytest.raises(MemlmError, match="nothing to merge"):
        memlm.merge([])
    shard = tmp_path / "a.shard"
    memlm.make_shard(TEST_TEXT, shard)
    with pytest.raises(ModelFormatError, match="memlm merge"):
        memlm.load(shard)
    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(TEST_TEXT.read_text().split("\n"), trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    words.save(str(tmp_path / "words.json"))
    other = tmp_path / "words.shard"
    memlm.make_shard(TEST_TEXT, other, tokenizer=tmp_path / "words.json")
    with pytest.raises(TokenizerMismatchError, match="words.json"):
        memlm.merge([shard, other])
    corrupt = tmp_path / "corrupt.shard"
    data = shard.read_bytes()
    corrupt.write_bytes(data[:-10] + bytes(b ^ 1 for b in data[-10:]))
    with pytest.raises(ModelFormatError, match="checksum"):
        memlm.merge([corrupt])


def test_cli_shard_and_merge(tmp_path):
    a, b, m = tmp_path / "a.shard", tmp_path / "b.shard", tmp_path / "m.memlm"
    assert "wrote shard" in run_cli("train", TRAIN_TEXT, "--shard", "-o", a).stderr
    run_cli("train", TEST_TEXT, "--shard", "-o", b)
    proc = run_cli("merge", a, b, "--width", 4, "-o", m)
    assert "wrote" in proc.stderr and memlm.load(m, verify=True).width == 4
    proc = run_cli("merge", tmp_path / "missing.shard", "-o", m, check=False)
    assert proc.returncode == 1 and "missing.shard" in proc.stderr and "Traceback" not in proc.stderr
