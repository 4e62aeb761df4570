"""The model's inputs and sections checked (issue 12): verify parses the tokenizer and the metadata (11),
ids are checked rather than coerced (12), sampling and voting numbers (13), instance-file models score
unknown symbols as OOV (14)."""

import json
import math
import re
import zlib

import numpy as np
import pytest

import memlm
from memlm._core import UNKNOWN, CoreModel, TrainOptions, write_shard
from memlm.corpus import read_blocks
from memlm.errors import MemlmError, ModelFormatError
from memlm.tokenization import TokenizerSpec

from conftest import TEST_TEXT, TRAIN_TEXT, run_cli

# -- 11: verify checks the tokenizer section and the metadata ---------------------------------------------


def _model_file(path, tokenizer_blob: bytes | None = None, metadata: str | None = None):
    """A model file written by the core's own training and saving, with the given tokenizer section and
    metadata (checksums right: only what they hold is wrong)."""
    spec = TokenizerSpec.from_file()
    tokens, lengths = spec.encode_blocks(read_blocks([TEST_TEXT])[:30])
    if metadata is None:
        metadata = json.dumps({"tokenizer": spec.name, "tokenizer_sha256": spec.sha256})
    blob = spec.to_blob() if tokenizer_blob is None else tokenizer_blob
    core = CoreModel.train_tokens(tokens, lengths, spec.vocab_size, blob, metadata, TrainOptions(width=2))
    core.save(path)
    return path


def _sha(text: str) -> str:
    return TokenizerSpec(json=text, name="x").sha256


@pytest.mark.parametrize(
    "blob, recorded",
    [
        (b"not zlib at all", None),
        (zlib.compress(b'{"not": "a tokenizer"}'), '{"not": "a tokenizer"}'),
        (zlib.compress(b"\xff\xfe not UTF-8"), None),
        (zlib.compress(b"[1, 2, 3]"), "[1, 2, 3]"),
    ],
    ids=["not-zlib", "not-a-tokenizer", "not-utf8", "json-array"],
)
def test_verify_parses_the_tokenizer_section(tmp_path, blob, recorded):
    metadata = json.dumps({"tokenizer": "bogus.json", "tokenizer_sha256": _sha(recorded or "")})
    path = _model_file(tmp_path / "bad-tokenizer.memlm", blob, metadata)
    model = memlm.load(path)  # opening checks checksums only: the section is read when first needed
    with pytest.raises(ModelFormatError, match="bad-tokenizer.memlm: the tokenizer section is not a valid"):
        model.verify()
    with pytest.raises(ModelFormatError, match="bad-tokenizer.memlm"):
        memlm.load(path, verify=True)
    # A query needs the tokenizer: the same error, not zlib.error or a tokenizers exception.
    with pytest.raises(ModelFormatError, match="bad-tokenizer.memlm"):
        memlm.load(path).predict("It was")
    for command in (["verify", path], ["score", path, TEST_TEXT], ["generate", path, "It was"]):
        proc = run_cli(*command, check=False)
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr
        assert proc.stderr.startswith("memlm: error: ") and "bad-tokenizer.memlm" in proc.stderr


def test_verify_checks_the_tokenizer_hash(tmp_path):
    path = _model_file(tmp_path / "other-hash.memlm", metadata=json.dumps({"tokenizer_sha256": "0" * 64}))
    with pytest.raises(ModelFormatError, match="other-hash.memlm: the tokenizer stored in the model does not match"):
        memlm.load(path, verify=True)
    assert "other-hash.memlm" in run_cli("verify", path, check=False).stderr


@pytest.mark.parametrize("metadata", ["not JSON", "[1, 2]", '{"unterminated": '])
def test_metadata_that_is_not_a_json_object_is_a_format_error(tmp_path, metadata):
    path = _model_file(tmp_path / "bad-metadata.memlm", metadata=metadata)
    with pytest.raises(ModelFormatError, match="bad-metadata.memlm: the metadata section is not"):
        memlm.load(path)
    for command in ("info", "verify"):
        proc = run_cli(command, path, check=False)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        assert "bad-metadata.memlm: the metadata section is not" in proc.stderr


def test_shards_with_bad_sections_are_format_errors(tmp_path):
    spec = TokenizerSpec.from_file()
    tokens, lengths = spec.encode_blocks(["It was a fine day.", "Emma laughed."])
    cases = [("bad-tokenizer.shard", b"not zlib", '{"tokenizer": "x"}', "tokenizer section is not a valid tokenizer")]
    cases.append(("bad-metadata.shard", spec.to_blob(), "not JSON", "metadata section of the shard is not JSON"))
    for name, blob, metadata, message in cases:
        path = tmp_path / name
        write_shard(path, tokens, lengths, spec.vocab_size, blob, metadata)
        with pytest.raises(ModelFormatError, match=f"{name}.*{message}"):
            memlm.merge([path], width=2)
        proc = run_cli("merge", path, "--shard", "-o", tmp_path / "all.shard", check=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and name in proc.stderr and message in proc.stderr


def test_a_good_model_still_verifies(model4_path):
    memlm.load(model4_path, verify=True).verify()
    assert run_cli("verify", model4_path).stdout.strip().endswith(": ok")


def test_train_token_ids_checks_its_metadata_and_records_the_tokenizer(tmp_path):
    spec = TokenizerSpec.from_file()
    tokens, lengths = spec.encode_blocks(read_blocks([TEST_TEXT])[:30])
    with pytest.raises(MemlmError, match="metadata must be a JSON object"):
        memlm.train_token_ids(tokens, lengths, spec, width=2, metadata="not JSON")
    with pytest.raises(MemlmError, match="tokenizer_sha256"):
        memlm.train_token_ids(tokens, lengths, spec, width=2, metadata='{"tokenizer_sha256": "abc"}')
    path = tmp_path / "own.memlm"
    memlm.train_token_ids(tokens, lengths, spec, width=2, metadata='{"note": "mine"}', output=path)
    loaded = memlm.load(path, verify=True)
    assert loaded.metadata["note"] == "mine" and loaded.metadata["tokenizer_sha256"] == spec.sha256
    assert loaded.predict("It was").ids


# -- 12: ids checked, never coerced ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contexts(model4) -> np.ndarray:
    return model4.windows("It was a fine morning, and the sun shone.")[0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda c: np.where(c == c[0, -1], -1, c.astype(np.int64)), "id -1 is negative"),
        (lambda c: c.astype(np.int64) + 2**32, "outside the model's vocabulary"),
        (lambda c: c.astype(np.uint64) + 2**40, "outside the model's vocabulary"),
        (lambda c: c.astype(np.float64) + 0.9, "dtype float64"),
        (lambda c: c.astype(np.float32), "dtype float32"),
        (lambda c: c.astype(bool), "dtype bool"),
        (lambda c: c.astype(object), "dtype object"),
        (lambda c: c.tolist() and [[60000] * c.shape[1]], "id 60000 is outside the model's vocabulary"),
        (lambda c: c.astype(np.uint32)[0], "2-D"),
    ],
    ids=["negative", "2**32+", "uint64-big", "float", "float32", "bool", "object", "list-out-of-vocab", "1-D"],
)
def test_predict_batch_and_score_windows_reject_bad_ids(model4, contexts, make, message):
    bad = make(contexts)
    with pytest.raises(MemlmError, match=message):
        model4.predict_batch(bad)
    targets = np.zeros(len(np.atleast_2d(bad)), dtype=np.uint32)
    with pytest.raises(MemlmError, match=message):
        model4.score_windows(bad, targets)


def test_good_ids_in_any_integer_dtype_give_the_same_answers(model4, contexts):
    expected = model4.predict_batch(contexts, top_k=3)[0]
    for dtype in (np.int64, np.int32, np.uint64, np.uint32, np.uint16):
        assert np.array_equal(model4.predict_batch(contexts.astype(dtype), top_k=3)[0], expected)
    assert np.array_equal(model4.predict_batch(contexts.tolist(), top_k=3)[0], expected)
    # The unknown id (2**32 - 1, what an unknown symbol maps to) is an id: it matches nothing.
    unknown = contexts.astype(np.int64)
    unknown[:, 0] = UNKNOWN
    assert model4.predict_batch(unknown)[0].shape == (len(contexts), 1)
    assert model4.predict_batch(np.zeros((0, model4.width), dtype=np.uint32))[0].shape == (0, 1)


def test_targets_and_windows_are_checked(model4, contexts):
    targets = np.arange(len(contexts))
    for bad, message in [(targets - 1, "targets: id -1 is negative"), (targets + 0.5, "dtype float64")]:
        with pytest.raises(MemlmError, match=message):
            model4.score_windows(contexts, bad)
    lengths = np.array([3, 2], dtype=np.uint64)
    for tokens, message in [
        (np.array([1, 2, -3, 4, 5]), "negative"),
        (np.array([1.0, 2, 3, 4, 5]), "dtype float64"),
        (np.array([1, 2, 3, 4, 2**32 + 5]), "outside the model's vocabulary"),
    ]:
        with pytest.raises(MemlmError, match=message):
            model4.windows(tokens=tokens, block_lengths=lengths)
    for bad_lengths in (np.array([3.0, 2.0]), np.array([6, -1])):
        with pytest.raises(MemlmError, match="block_lengths"):
            model4.windows(tokens=np.arange(5), block_lengths=bad_lengths)
    ok = model4.windows(tokens=np.arange(5, dtype=np.int64), block_lengths=[3, 2])
    assert ok[1].tolist() == [0, 1, 2, 3, 4]


def test_predict_rejects_bytes_and_bad_id_lists(model4):
    # Ids reach the binding as a list of Python ints, whatever held them (a list, a tuple, an array): one
    # message for one bad id, naming it as given.
    vocabulary = f"is outside the model's vocabulary of {model4.n_ids} ids"
    for bad, message in [
        ([-1, 464], "id -1 is negative (ids are whole numbers from 0)"),
        ([2**32 + 464], f"id {2**32 + 464} {vocabulary}"),
        ([2**40], f"id {2**40} {vocabulary}"),
        ([464.9], "ids must be ints, got 464.9 (a float)"),
        ([True], "ids must be ints, got True (a bool)"),  # np.array([True, 464]) would be [1, 464]
        ([None], "ids must be ints, got None (a NoneType)"),
        (list(range(100)) + [-5], "id -5 is negative (ids are whole numbers from 0)"),  # the last W count
        ([[464, 13]], "ids must be ints, got [464, 13] (a list)"),
        (["It", "was"], "ids must be ints, got 'It' (a str)"),
    ]:
        for form in (list, tuple, np.array):
            for answer in (model4.predict, model4.votes, model4.probabilities):
                with pytest.raises(MemlmError) as raised:
                    answer(form(bad))
                assert str(raised.value) == message, (form, bad)
    with pytest.raises(MemlmError, match=vocabulary):
        model4.predict(np.array([464, 2**63], dtype=np.uint64))
    for bad in (b"It was", bytearray(b"It was")):
        with pytest.raises(MemlmError, match="not bytes"):
            model4.predict(bad)
    with pytest.raises(MemlmError, match="give text as str or token ids as a list or array, got set"):
        model4.predict({464})
    ids = model4.encode("It was a fine")
    expected = model4.predict(ids)
    assert model4.predict(tuple(ids)) == model4.predict(np.array(ids, dtype=np.int64)) == expected
    assert model4.predict([np.int64(i) for i in ids]) == expected
    with pytest.raises(MemlmError, match="give the prompt as str, not bytes"):
        model4.generate(b"It was")


def test_write_instances_and_train_token_ids_check_their_ids(tmp_path):
    spec = TokenizerSpec.from_file()
    tokens, lengths = spec.encode_blocks(["It was a fine day."])
    out = tmp_path / "x.txt"
    for bad, message in [
        (np.append(tokens.astype(np.int64), -1), "negative"),
        (tokens.astype(np.float64), "dtype float64"),
        (np.append(tokens[:-1], spec.vocab_size), "outside the tokenizer's vocabulary"),
    ]:
        with pytest.raises(MemlmError, match=message):
            memlm.write_instances(bad, lengths, out, 3, spec.vocab_size)
        with pytest.raises(MemlmError, match=message):
            memlm.train_token_ids(bad, lengths, spec, width=3)
    assert not out.exists()
    memlm.write_instances(tokens.astype(np.int64), lengths, out, 3, spec.vocab_size)
    assert len(out.read_text().splitlines()) == tokens.size


# -- 13: sampling and voting numbers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_ib1() -> memlm.Model:
    return memlm.train(TRAIN_TEXT, width=3, algorithms="igtree,ib1")


def test_temperature_must_be_a_positive_finite_number(model4, model4_path):
    for temperature in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(MemlmError, match="temperature"):
            model4.generate("It was", do_sample=True, temperature=temperature)
    proc = run_cli("generate", model4_path, "It was", "--do-sample", "--temperature", "nan", check=False)
    assert proc.stderr == "memlm: error: temperature must be a positive finite number, got nan\n"
    assert proc.returncode == 1


def test_a_low_temperature_samples_like_greedy(model4):
    # Votes raised to 1/0.005 = 200 overflow a float: the core works with logarithms.
    for prompt in ("It was", "Emma Woodhouse, handsome,", "Mr. Knightley"):
        sampled = model4.generate(prompt, max_new_tokens=15, do_sample=True, temperature=0.005, top_k=0, seed=3)
        again = model4.generate(prompt, max_new_tokens=15, do_sample=True, temperature=0.005, top_k=0, seed=3)
        assert sampled == again and sampled
        first = model4.predict(prompt, top_k=2)
        if first.votes[0] > first.votes[1]:  # no tie for the first token: sampling picks the winner
            assert sampled.startswith(first.token)


def test_exponential_decay_needs_a_finite_decay(model_ib1):
    for decay in (math.inf, math.nan, -1.0):
        with pytest.raises(MemlmError, match="decay"):
            model_ib1.predict("It was", algorithm="ib1", k=3, vote="exponential_decay", decay=decay)
    p = model_ib1.predict("It was", algorithm="ib1", k=3, vote="exponential_decay", decay=50.0)
    assert all(math.isfinite(v) for v in p.votes) and all(math.isfinite(s) for s in p.shares)


# -- 14: instance-file models score unknown symbols as OOV ------------------------------------------------


@pytest.fixture(scope="module")
def instance_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instances")
    instances = folder / "inst.txt"
    text = folder / "small.txt"
    text.write_text(TEST_TEXT.read_text()[:3000])
    run_cli("instances", text, "--width", 3, "-o", instances)
    path = folder / "inst.memlm"
    run_cli("train", "--instances", instances, "-o", path)
    return path


def test_instance_models_score_unknown_symbols_as_oov(instance_model, tmp_path):
    model = memlm.load(instance_model)
    known = [model.decode([i]) for i in (5, 6, 7)]
    text = f"{known[0]} {known[1]} zzz-never-seen {known[2]}"
    scores = model.score(text)
    assert [s.token for s in scores] == [known[0], known[1], "zzz-never-seen", known[2]]
    unknown = scores[2]
    assert unknown.oov and unknown.id == UNKNOWN and math.isfinite(unknown.log10_prob)
    result = model.perplexity(text)
    assert result["tokens"] == 4 and result["oov"] >= 1 and math.isfinite(result["perplexity"])
    # The unknown symbol in a context matches nothing; predicting after it works.
    assert model.predict(f"{known[0]} zzz-never-seen").ids
    test = tmp_path / "test.txt"
    test.write_text(text + "\n")
    proc = run_cli("score", instance_model, test)
    assert "'zzz-never-seen'" in proc.stdout and "OOV:" in proc.stderr
    result = json.loads(run_cli("eval", instance_model, test, "--json").stdout)
    assert result["tokens"] == 4 and result["oov"] >= 1


# -- issue 11's review: the Python must-fixes --------------------------------------------------------------


def test_classify_file_checks_the_query_before_reading(model4, tmp_path):
    output = tmp_path / "out.txt"
    # An IGTree-only model cannot answer with IB1: said before the (here missing) file is read or the
    # output made.
    with pytest.raises(MemlmError, match="ib1"):
        model4.classify_file(tmp_path / "missing.txt", output, algorithm="ib1")
    with pytest.raises(MemlmError, match="k must be at least 1"):
        model4.classify_file(tmp_path / "missing.txt", output, algorithm="igtree", k=0)
    assert not output.exists()


def test_predict_batch_top_k(model4, contexts):
    with pytest.raises(MemlmError, match="top_k must be at least 0, got -3"):
        model4.predict_batch(contexts, top_k=-3)
    assert model4.predict_batch(contexts, top_k=0)[0].shape == (len(contexts), 1)
    everything = model4.predict_batch(contexts, top_k=2**40)[0]
    assert everything.shape[1] <= model4.n_ids and np.array_equal(
        everything[:, :3], model4.predict_batch(contexts, 3)[0]
    )


def test_shares_when_every_vote_would_underflow(model_ib1):
    # Exponential decay with a large alpha: exp(-alpha * d) underflows for far neighbours, so the core floors
    # each vote at f64 epsilon times its count, as TiMBL does: the votes stay positive and ordered, the
    # shares defined.
    p = model_ib1.predict("zzz qqq xxx", algorithm="ib1", k=3, vote="exponential_decay", decay=1e6, top_k=3)
    assert p.distance > 0 and len(p.votes) == 3
    assert all(0 < v < 1e-9 for v in p.votes) and p.votes == sorted(p.votes, reverse=True)
    assert all(0 < s < 1 for s in p.shares)


def test_n_ids_decode_and_deprecated_names(model4, instance_model):
    assert model4.n_ids == model4.pad_id + 1 == TokenizerSpec.from_file().vocab_size + 1
    with pytest.warns(DeprecationWarning, match="n_ids"):
        assert model4.vocab_size == model4.n_ids
    symbols = memlm.load(instance_model)
    assert symbols.pad_id == 0 and symbols.decode([0]) == "_"
    for model in (model4, symbols):
        with pytest.raises(MemlmError, match="unknown id .* has no text"):
            model.decode([5, UNKNOWN])
        with pytest.raises(MemlmError, match="outside the model's vocabulary"):
            model.decode([model.n_ids])
    with pytest.warns(DeprecationWarning, match="needs_instance_base"):
        assert memlm.training.needs_instance_base("igtree,ib1")
    assert memlm.ALGORITHMS == ("igtree", "tribl2", "ib1") and "gain_ratio" in memlm.WEIGHTINGS
    assert "exponential_decay" in memlm.VOTES


# -- issue 12, round 2: one clear line for every bad argument ----------------------------------------------


_BAD_QUERIES = [
    (dict(k=-1), "k must be at least 1, got -1"),
    (dict(k=0), "k must be at least 1, got 0"),
    (dict(k=True), "k must be a whole number, got True"),
    (dict(k=2.0), "k must be a whole number, got 2.0"),
    (dict(vote="foo"), 'unknown vote "foo"'),
    (dict(vote=5), "vote must be a name (a str), got 5"),
    (dict(decay=math.nan), "decay must be a positive finite number, got nan"),
    (dict(decay=math.inf), "decay must be a positive finite number, got inf"),
    (dict(decay=0.0), "decay must be a positive finite number, got 0.0"),
    (dict(decay=-1), "decay must be a positive finite number, got -1"),
    (dict(decay=True), "decay must be a number, got True"),
    (dict(decay="x"), "decay must be a number, got 'x'"),
    (dict(algorithm=5), "algorithm must be a name (a str), got 5"),
    (dict(algorithm=["igtree"]), "algorithm must be a name (a str), got ['igtree']"),
]


@pytest.mark.parametrize(("bad", "message"), _BAD_QUERIES)
@pytest.mark.parametrize("algorithm", ["igtree", "ib1"])
def test_query_arguments_are_refused_whatever_the_algorithm(model_ib1, tmp_path, bad, message, algorithm):
    from memlm.evaluation import evaluate

    arguments = {"algorithm": algorithm, **bad}
    contexts = np.zeros((2, model_ib1.width), dtype=np.uint32)
    for call in (
        lambda: model_ib1.predict("It was", **arguments),
        lambda: model_ib1.predict_batch(contexts, **arguments),
        lambda: model_ib1.votes("It was", **arguments),
        lambda: model_ib1.check_query(**arguments),
        lambda: model_ib1.classify_file(tmp_path / "missing.txt", **arguments),
        lambda: evaluate(model_ib1, [tmp_path / "missing.txt"], **arguments),
        lambda: model_ib1.stream("It was", **arguments),
    ):
        with pytest.raises(MemlmError, match=re.escape(message)):
            call()


def test_counts_are_whole_numbers_not_bools_and_huge_ones_mean_all(model4, contexts):
    # A query made for top_k=1 is not taken for top_k=True (True == 1) or 1.0.
    assert model4.predict("It was", top_k=1).ids == model4.predict("It was", top_k=np.int64(1)).ids
    for top_k, shown in [(True, "True"), (1.0, "1.0"), (np.float64(1.0), "np.float64(1.0)"), ("1", "'1'")]:
        with pytest.raises(MemlmError, match=re.escape(f"top_k must be a whole number, got {shown}")):
            model4.predict("It was", top_k=top_k)
        with pytest.raises(MemlmError, match="top_k must be a whole number"):
            model4.predict_batch(contexts, top_k=top_k)
    everything = model4.predict("It was", top_k=0)
    for huge in (np.uint64(2**64 - 1), 2**64, 10**30):
        assert model4.predict("It was", top_k=huge) == everything
        assert model4.predict("It was", k=huge) == model4.predict("It was")
    huge_batch = model4.predict_batch(contexts, top_k=np.uint64(2**64 - 1))[0]
    assert np.array_equal(huge_batch, model4.predict_batch(contexts, top_k=2**40)[0])


MEMORY = re.escape("memory must be a whole number of bytes from 1 to 2**63 - 1 (8 EiB less one byte), got ")


def test_build_numbers_flags_and_names_are_checked_first(tmp_path):
    missing = tmp_path / "missing.txt"  # never read: every argument is checked first
    for bad, message in [
        (dict(width=True), "width must be between 1 and 64, got True"),
        (dict(width=2**70), f"width must be between 1 and 64, got {2**70}"),
        (dict(width=4.0), "width must be between 1 and 64, got 4.0"),
        (dict(memory=10**99), f"{MEMORY}{10**99}"),
        (dict(memory=1.5e9), f"{MEMORY}1500000000.0"),
        (dict(memory=True), f"{MEMORY}True"),
        (dict(memory=0), f"{MEMORY}0"),
        (dict(keep_tokens=1), "keep_tokens must be True or False, got 1"),
        (dict(weighting=5), r"weighting must be a name \(a str\), got 5"),
        (dict(algorithms=["igtree", 5]), r"algorithms must be a name \(a str\), got 5"),
    ]:
        with pytest.raises(MemlmError, match=message):
            memlm.train(missing, **bad)
        with pytest.raises(MemlmError, match=message):
            memlm.merge([missing], **bad)
    assert memlm.train(TRAIN_TEXT, width=np.int8(2), keep_tokens=np.bool_(True)).width == 2


def test_classify_file_takes_a_flag(model4, tmp_path):
    with pytest.raises(MemlmError, match="distribution must be True or False, got 1"):
        model4.classify_file(tmp_path / "missing.txt", distribution=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "give the text as str, got NoneType"),
        (5, "give the text as str, got int"),
        (b"abc", "give the text as str, not bytes (decode the bytes first)"),
        ("It \ud800 was", "the text is not valid Unicode: a lone surrogate '\\ud800' at position 3"),
        ("x" * 70_000 + "\udcff", "the text is not valid Unicode: a lone surrogate '\\udcff' at position 70000"),
    ],
)
def test_text_is_a_str_of_valid_unicode(model4, instance_model, text, message):
    symbols = memlm.load(instance_model)
    for call in (model4.score, model4.perplexity, model4.encode, symbols.encode, symbols.score):
        with pytest.raises(MemlmError, match=re.escape(message)):
            call(text)
    if isinstance(text, str):  # ids are also accepted here: only a str is text
        for call in (model4.predict, model4.probabilities, model4.votes, model4.context):
            with pytest.raises(MemlmError, match=re.escape(message)):
                call(text)
        with pytest.raises(MemlmError, match=re.escape(message.replace("the text", "a block"))):
            model4.windows(["fine", text])
        with pytest.raises(MemlmError, match=re.escape(message.replace("the text", "the prompt"))):
            model4.generate(text)
    for call in (model4.predict, model4.probabilities):
        with pytest.raises(MemlmError, match="give text as str"):
            call(None if text is None else 5)


def test_a_lone_surrogate_in_a_jsonl_corpus_names_the_record(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": "bad \\ud800 here"}\n')
    with pytest.raises(memlm.CorpusError) as raised:
        memlm.train(corpus, width=2)
    assert str(raised.value) == (
        f"{corpus}:2: the 'text' field is not valid Unicode: a lone surrogate '\\ud800' at position 4"
    )


def test_invalid_utf8_names_the_python_keyword(tmp_path):
    from memlm.errors import InvalidUtf8Error

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"It was \xff fine")
    for call in (lambda: memlm.train(bad, width=2), lambda: memlm.tokenize([bad])):
        with pytest.raises(InvalidUtf8Error) as raised:
            call()
        assert str(raised.value) == f"{bad}: invalid UTF-8 at byte offset 7 (use errors='replace' to substitute)"
        assert (raised.value.source, raised.value.offset) == (str(bad), 7)
    assert memlm.train(bad, width=2, errors="replace").width == 2
