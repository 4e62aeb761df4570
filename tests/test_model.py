"""The Python API: training, prediction, generation, model files and bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

import memlm
from bench.corruption import section_table
from memlm.errors import CorpusError, MemlmError, ModelFormatError, TokenizerMismatchError

from conftest import TEST_TEXT, TRAIN_TEXT


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    """A real, different tokenizer: word-level, trained on the sample text."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        TRAIN_TEXT.read_text().split("\n"), trainers.WordLevelTrainer(special_tokens=["[UNK]"], vocab_size=3000)
    )
    path = tmp_path_factory.mktemp("tok") / "words.json"
    tok.save(str(path))
    return path


def test_predict_returns_distribution_head(model4):
    p = model4.predict("It was a very", top_k=5)
    assert 1 <= len(p.ids) <= 5
    assert p.votes == sorted(p.votes, reverse=True)
    assert 0 < sum(p.shares) <= 1 + 1e-12
    assert 0 <= p.depth <= 4
    assert p.token == model4.decode([p.id])
    # The distance is the summed weight of the unmatched positions.
    weights = model4.info()["gain_ratio"]
    order = [4 - d for d in model4.info()["feature_order"]]
    assert p.distance == pytest.approx(sum(weights[f] for f in order[p.depth :]))


def test_seen_context_predicts_the_training_continuation(model4):
    # "Emma Woodhouse, handsome, clever, and" is followed by " rich" in the training text.
    assert model4.predict("Emma Woodhouse, handsome, clever, and").token == " rich"


def test_prompt_longer_than_width_uses_its_last_tokens(model4):
    ids = model4.encode("She was the youngest of the two daughters of a most affectionate")
    assert len(ids) > model4.width
    assert model4.predict(ids) == model4.predict(ids[-model4.width :])


def test_empty_prompt_is_a_block_start(model4):
    from collections import Counter

    from memlm.corpus import read_blocks

    assert model4.context("") == [model4.pad_id] * model4.width
    first_tokens = Counter(model4.encode(block)[0] for block in read_blocks([TRAIN_TEXT]))
    assert model4.predict("").id == first_tokens.most_common(1)[0][0]


def test_unknown_characters_still_predict(model4):
    p = model4.predict("\u4e2d\u6587 \U0001f600 \u00e6\u00f8\u00e5")
    assert p.ids and p.depth < 4


def test_batch_equals_single(model4):
    rng = np.random.default_rng(0)
    ids = model4.encode(TEST_TEXT.read_text()[:5000])
    contexts = np.array([model4.context(ids[max(0, i - 4) : i]) for i in range(len(ids))], dtype=np.uint32)
    classes, counts, depth, distance = model4.predict_batch(contexts, top_k=3)
    for row in rng.choice(len(ids), 50, replace=False):
        p = model4.predict(ids[max(0, row - 4) : row], top_k=3)
        assert list(classes[row][: len(p.ids)]) == p.ids
        assert list(counts[row][: len(p.ids)]) == p.votes
        assert depth[row] == p.depth
        assert distance[row] == pytest.approx(p.distance)


def test_bad_contexts_are_clear_errors(model4):
    with pytest.raises(MemlmError, match="outside the model's vocabulary"):
        model4.predict([10**6])
    with pytest.raises(MemlmError, match="a context has 5 ids but the model's width is 4"):
        model4.predict_batch(np.zeros((2, 5), dtype=np.uint32))
    with pytest.raises(MemlmError, match="2-D"):
        model4.predict_batch(np.zeros(4, dtype=np.uint32))


@pytest.mark.parametrize("width", [0, 65])
def test_width_out_of_range(width):
    with pytest.raises(MemlmError, match="width must be between 1 and 64"):
        memlm.train(TRAIN_TEXT, width=width)


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(CorpusError):
        memlm.train(empty)


def test_one_token_blocks_and_a_single_block(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("A\n\nB\n\nA\n\nA")
    model = memlm.train(short, width=3)
    assert model.info()["training_instances"] == 4
    assert model.predict("").token == "A"
    single = tmp_path / "single.txt"
    single.write_text("one two three\nfour five six\none two three")
    model = memlm.train(single, width=2)
    assert model.predict(" one two").token == " three"


def test_generate_greedy_follows_top1(model4):
    text = model4.generate("It is a truth", max_new_tokens=8)
    ids = model4.encode("It is a truth")
    generated = []
    for _ in range(8):
        generated.append(model4.predict(ids + generated).id)
    assert text == model4.decode(generated)


def test_sampling_is_repeatable_with_a_seed_and_stream_matches(model4):
    kwargs = dict(max_new_tokens=25, do_sample=True, temperature=0.8, top_k=20, top_p=0.9, seed=3)
    a = model4.generate("Mr. Knightley", **kwargs)
    assert a == model4.generate("Mr. Knightley", **kwargs)
    assert a == "".join(model4.stream("Mr. Knightley", **kwargs))
    assert a != model4.generate("Mr. Knightley", **{**kwargs, "seed": 4})


def test_stop_strings(model4):
    full = model4.generate("Emma", max_new_tokens=30)
    cut = full.find(",")
    assert cut > 0
    assert model4.generate("Emma", max_new_tokens=30, stop=[","]) == full[:cut]


def test_bad_sampling_arguments(model4):
    with pytest.raises(MemlmError, match="temperature"):
        model4.generate("x", do_sample=True, temperature=0)
    with pytest.raises(MemlmError, match="top_p"):
        model4.generate("x", do_sample=True, top_p=1.5)


def test_save_load_round_trip(model4, model4_path):
    loaded = memlm.load(model4_path)
    assert loaded.info()["nodes"] == model4.info()["nodes"]
    assert loaded.generate("Harriet", max_new_tokens=15) == model4.generate("Harriet", max_new_tokens=15)
    assert loaded.tokenizer.sha256 == model4.tokenizer.sha256


@pytest.fixture(scope="module")
def reloaded4(model4_path) -> memlm.Model:
    return memlm.load(model4_path)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50256), min_size=0, max_size=20))
def test_reloaded_model_classifies_exactly_as_before(model4, reloaded4, ids):
    # Property: for any context, the reloaded model's prediction equals the in-memory model's (the file loaded
    # once: a load checks every section's checksum, 0.2 s, which 60 examples paid each).
    assert reloaded4.predict(ids, top_k=0) == model4.predict(ids, top_k=0)


def test_missing_corrupt_truncated_foreign_and_newer_files(model4_path, tmp_path):
    with pytest.raises(OSError, match="nothing.memlm"):
        memlm.load(tmp_path / "nothing.memlm")
    data = model4_path.read_bytes()
    cases = {
        "corrupt": data[:1000] + bytes([data[1000] ^ 1]) + data[1001:],
        "truncated": data[: len(data) // 2],
        "foreign": b"%PDF-1.7 not a model at all" * 10,
        "newer": data[:8] + (99).to_bytes(4, "little") + data[12:],
        "empty": b"",
    }
    messages = {
        "corrupt": "checksum",
        "truncated": "truncated",
        "foreign": "not a memlm model",
        "newer": "format version 99",
        "empty": "not a memlm model",
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.memlm"
        path.write_bytes(content)
        with pytest.raises(ModelFormatError, match=messages[name]):
            memlm.load(path, verify=True)


def test_quick_load_reads_no_trie_and_verify_catches_its_corruption(model4_path, tmp_path):
    # A byte of the Params section (small: checked on every load); the middle of the file lies in a bulk
    # section that only verification reads in full.
    data = model4_path.read_bytes()
    at = next(offset for ident, offset, _ in section_table(data) if ident == 1)
    small = tmp_path / "small.memlm"
    small.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    with pytest.raises(ModelFormatError, match="checksum mismatch in section"):
        memlm.load(small)
    middle = len(data) // 2
    bulk = tmp_path / "bulk.memlm"
    bulk.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :])
    model = memlm.load(bulk)
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        model.verify()
    assert memlm.load(model4_path, verify=True).width == 4


def test_other_tokenizer(model4_path, word_tokenizer, tmp_path):
    with pytest.raises(TokenizerMismatchError, match="gpt2-tokenizer.json"):
        memlm.load(model4_path, tokenizer=word_tokenizer)
    assert memlm.load(model4_path, tokenizer=memlm.tokenization.DEFAULT_TOKENIZER).width == 4
    # Any tokenizers JSON works for training, and the model carries it.
    words = memlm.train(TRAIN_TEXT, width=3, tokenizer=word_tokenizer)
    path = tmp_path / "words.memlm"
    words.save(path)
    reloaded = memlm.load(path)
    assert reloaded.tokenizer.name == "words.json"
    assert reloaded.generate("Emma Woodhouse ,", max_new_tokens=3) == words.generate(
        "Emma Woodhouse ,", max_new_tokens=3
    )


def test_save_is_atomic_and_reports_bad_paths(model4, tmp_path):
    with pytest.raises(OSError):
        model4.save(tmp_path / "no" / "such" / "dir" / "m.memlm")
    target = tmp_path / "m.memlm"
    model4.save(target)
    model4.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.memlm"]
