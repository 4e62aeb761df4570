"""Generation: the core's loop, incremental decoding and stop strings give exactly the text of the plain
method (predict the next token, decode everything generated so far, cut at the first stop string)."""

import itertools
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import memlm
from memlm.errors import MemlmError
from memlm.generation import CHUNK_SECONDS, StopCutter, TextDecoder, next_chunk, pieces, stop_list
from memlm.tokenization import TokenizerSpec

from conftest import TEST_TEXT, TRAIN_TEXT

#: Characters that GPT-2's byte-level BPE splits over two or more tokens.
MULTIBYTE = (
    "The café served crème brûlée 🍰 and 抹茶 tea — “lovely”, said Zoë. 😀 Ærø, Þórr, Ωμέγα, 東京タワー.\n\n"
    "Then 🦀 and 🐍 met at the 駅, ate ラーメン 🍜 — and Zoë laughed: “ha ha” 😂.\n\n"
)


def reference(model: memlm.Model, prompt: str, n: int, stops=()) -> tuple[str, list[int]]:
    """Greedy generation the plain way: the top prediction after the whole text so far, every generated
    token decoded again from the start, the text cut before the stop string completed first."""
    ids, generated = model.encode(prompt), []
    for _ in range(n):
        generated.append(model.predict(ids + generated, top_k=1).id)
    text = model.decode(generated) if model.has_tokenizer else "".join(" " + model.decode([i]) for i in generated)
    found = [(text.find(s) + len(s), text.find(s)) for s in stops if s and s in text]
    return (text[: min(found)[1]] if found else text), generated


@pytest.fixture(scope="module")
def multibyte_model(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("multibyte") / "corpus.txt"
    corpus.write_text(MULTIBYTE * 3 + TRAIN_TEXT.read_text()[:20000], encoding="utf-8")
    return memlm.train(corpus, width=4)


@pytest.mark.parametrize(
    ("prompt", "stops"),
    [
        ("It is a truth", ()),
        ("Emma", (",",)),
        ("Mr. Knightley", (" the", "Harriet")),
        ("", ("\n", "ss")),
        ("She was", ("a", "an", "and the")),
    ],
)
def test_greedy_text_equals_decoding_everything_again(model16, prompt, stops):
    expected, _ = reference(model16, prompt, 150, stops)
    assert model16.generate(prompt, max_new_tokens=150, stop=list(stops)) == expected
    pieces = list(model16.stream(prompt, max_new_tokens=150, stop=list(stops)))
    assert "".join(pieces) == expected
    assert all(pieces)


@pytest.mark.parametrize("prompt", ["The café", "Then 🦀", "ate ラーメン", "Zoë", "met at the", "said Zoë."])
def test_characters_split_over_tokens_come_whole(multibyte_model, prompt):
    expected, generated = reference(multibyte_model, prompt, 120)
    decode = multibyte_model.decode
    # The case under test occurs: some generated prefix ends inside a character.
    assert any(decode(generated[:i]).endswith("\ufffd") for i in range(1, len(generated)))
    assert "\ufffd" not in expected
    pieces = list(multibyte_model.stream(prompt, max_new_tokens=120))
    assert "".join(pieces) == expected == multibyte_model.generate(prompt, max_new_tokens=120)
    assert not any("\ufffd" in piece for piece in pieces)
    # A stop string made of characters split over tokens.
    stop = next(s for s in ["🍰", "抹茶", "ラーメン", "😂", "東京"] if s in expected)
    cut, _ = reference(multibyte_model, prompt, 120, [stop])
    assert multibyte_model.generate(prompt, max_new_tokens=120, stop=stop) == cut


def test_a_character_left_incomplete_at_the_end_is_kept(multibyte_model):
    # Stop after every token count: wherever the last token ends, the text is the plain decoding.
    prompt = "The café served crème brûlée"
    _, generated = reference(multibyte_model, prompt, 40)
    for n in range(1, 40):
        expected = multibyte_model.decode(generated[:n])
        assert multibyte_model.generate(prompt, max_new_tokens=n) == expected
        assert "".join(multibyte_model.stream(prompt, max_new_tokens=n)) == expected


def test_symbol_models_generate_symbols_joined_by_spaces(tmp_path):
    instances = tmp_path / "i.txt"
    instances.write_text("_ _ a b\n_ a b c\na b c a\nb c a b\nc a b c\n")
    model = memlm.train_instances(instances)
    expected, _ = reference(model, "a b", 7)
    assert model.generate("a b", max_new_tokens=7) == expected == " c a b c a b c"
    assert "".join(model.stream("a b", max_new_tokens=7, stop=" b c")) == " c a"


def word_piece() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        [TRAIN_TEXT.read_text()], trainers.WordPieceTrainer(vocab_size=800, special_tokens=["[UNK]"])
    )
    return tok


def metaspace() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator([TRAIN_TEXT.read_text()], trainers.BpeTrainer(vocab_size=600))
    return tok


def word_level() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([TRAIN_TEXT.read_text()], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    return tok


def gpt2() -> Tokenizer:
    return TokenizerSpec.from_file().tokenizer


@pytest.mark.parametrize("make", [gpt2, word_piece, metaspace, word_level])
@pytest.mark.parametrize("chunks", [(1, 1), (3, 3), (1, 64), (7, 50)])
def test_incremental_decoding_equals_decoding_everything(make, chunks):
    tok = make()
    text = MULTIBYTE + TEST_TEXT.read_text()[:4000]
    ids = tok.encode(text, add_special_tokens=False).ids
    decode = lambda part: tok.decode(part, skip_special_tokens=False)  # noqa: E731
    decoder, pieces, start = TextDecoder(decode), [], 0
    size, largest = chunks
    while start < len(ids):
        pieces.append(decoder.push(ids[start : start + size]))
        start += size
        size = min(2 * size, largest)
    pieces.append(decoder.finish())
    assert "".join(pieces) == decode(ids)


def test_ids_starting_or_ending_inside_a_character():
    tok = gpt2()
    ids = tok.encode("東京タワー 😀").ids
    for first in range(len(ids)):
        for last in range(first + 1, len(ids) + 1):
            decoder = TextDecoder(tok.decode)
            text = "".join(decoder.push([i]) for i in ids[first:last]) + decoder.finish()
            assert text == tok.decode(ids[first:last])


def test_stop_cutter_holds_back_only_what_may_start_a_stop_string():
    cutter = StopCutter(["abc", "xyz"])
    assert cutter.feed("hello a") == "hello "
    assert cutter.feed("b") == ""
    assert cutter.feed("d") == "abd"
    assert cutter.feed("--ab") == "--"
    assert cutter.feed("cde") == ""
    assert cutter.stopped and cutter.feed("more") == "" and cutter.finish() == ""
    # The stop string completed first wins; at the same end, the longer.
    assert StopCutter(["bcd", "abcdef"]).feed("xxabcdefg") == "xxa"
    assert StopCutter(["cd", "bcd"]).feed("abcd") == "a"
    ends = StopCutter(["zz"])
    assert ends.feed("abz") == "ab" and ends.finish() == "z"
    assert stop_list(None) == [] and stop_list("x") == ["x"] and stop_list(["", "y"]) == ["y"]
    for bad in ([3], 5, b"x", ["a", None]):
        with pytest.raises(MemlmError, match="stop must be a str or a list of str"):
            stop_list(bad)


def test_chunks_grow_while_fast_and_shrink_to_the_time_a_call_may_take():
    assert next_chunk(64, 0.0, 4096) == 128
    assert next_chunk(4096, 0.001, 4096) == 4096
    # A call that took four times too long: a quarter of the ids next time, never below 1.
    assert next_chunk(4096, 4 * CHUNK_SECONDS, 4096) == 1024
    assert next_chunk(1, 100.0, 4096) == 1


class _SlowCore:
    """A generation whose every id takes 2 ms, recording the chunk sizes asked for."""

    def __init__(self):
        self.asked: list[int] = []

    def next_ids(self, n: int) -> list[int]:
        self.asked.append(n)
        time.sleep(n * 0.002)
        return [1] * n


class _Decoder:
    def push(self, ids):
        return "x" * len(ids)

    def finish(self):
        return ""


def test_a_slow_classifier_is_asked_for_chunks_that_take_about_chunk_seconds():
    core = _SlowCore()
    text = "".join(pieces(core.next_ids, 200, _Decoder(), [], (64, 4096)))
    assert text == "x" * 200
    # After the first chunk of 64 (128 ms), chunks of about CHUNK_SECONDS / 2 ms = 25 ids.
    assert core.asked[0] == 64 and all(n <= 32 for n in core.asked[1:]), core.asked


def test_sampling_is_reproducible_with_a_seed(model16):
    kwargs = dict(max_new_tokens=60, do_sample=True, temperature=0.9, top_k=30, top_p=0.95)
    runs = {seed: model16.generate("It was", seed=seed, **kwargs) for seed in range(6)}
    for seed, text in runs.items():
        assert model16.generate("It was", seed=seed, **kwargs) == text
        assert "".join(model16.stream("It was", seed=seed, **kwargs)) == text
    assert len(set(runs.values())) > 1
    assert model16.generate("It was", seed=np.uint64(3), **kwargs) == runs[3]
    # A sampled generation picks among the top_k classes of every context: with top_k=1, greedy.
    greedy = model16.generate("It was", max_new_tokens=60)
    assert model16.generate("It was", max_new_tokens=60, do_sample=True, top_k=1, seed=9) == greedy
    # Unseeded runs draw from the system's entropy; they still generate the requested length.
    assert model16.generate("It was", max_new_tokens=10, do_sample=True) != ""


def test_generation_with_knn_algorithms(tmp_path):
    model = memlm.train(TRAIN_TEXT, width=4, algorithms="igtree,tribl2")
    for algorithm in ["tribl2", "ib1"]:
        expected = []
        ids = model.encode("Emma was")
        for _ in range(6):
            expected.append(model.predict(ids + expected, top_k=1, algorithm=algorithm, k=2).id)
        assert model.generate("Emma was", max_new_tokens=6, algorithm=algorithm, k=2) == model.decode(expected)


def test_bad_generation_arguments_fail_at_the_call(model4):
    # `stream` checks everything when called, not when its first piece is asked for.
    for bad in [
        dict(max_new_tokens=-1),
        dict(do_sample=True, temperature=0),
        dict(do_sample=True, top_p=1.5),
        dict(do_sample=True, top_k=-1),
        dict(algorithm="nearest"),
        dict(stop=[1]),
        dict(do_sample=True, seed=-1),
        dict(do_sample=True, seed=1 << 64),
        dict(do_sample=True, seed=1.5),
        dict(max_new_tokens=2.0),
        dict(max_new_tokens=True),
        dict(max_new_tokens=10**30),
        dict(do_sample=1),
        dict(do_sample=True, top_k=True),
        dict(do_sample=True, temperature=True),
        dict(do_sample=True, top_p=True),
        dict(do_sample=True, top_k=2.0),
        dict(stop=5),
        dict(stop=b"x"),
        dict(k=0),
        dict(k=True),
        dict(vote="foo"),
        dict(decay=float("nan")),
    ]:
        with pytest.raises(MemlmError):
            model4.stream("x", **bad)
    for prompt, message in [
        (None, "give the prompt as str, got NoneType"),
        (b"It was", "give the prompt as str, not bytes"),
        ("It \ud800 was", "the prompt is not valid Unicode: a lone surrogate '\\ud800' at position 3"),
    ]:
        with pytest.raises(MemlmError, match=re.escape(message)):
            model4.stream(prompt)
    assert model4.generate("x", max_new_tokens=0) == ""
    assert list(model4.stream("x", max_new_tokens=0)) == []


def test_numbers_show_as_given_and_numpy_integers_are_counts(model4):
    # Beyond what the core counts: the number as given, not a wrapped or clamped one.
    for value in (10**30, 2**64):
        with pytest.raises(MemlmError) as raised:
            model4.stream("It", max_new_tokens=value)
        assert str(raised.value) == f"max_new_tokens must be a whole number in [0, 2**64), got {value}"
    # A count too large for the core is not an OverflowError: a top_k beyond the classes keeps them all.
    sampled = dict(max_new_tokens=8, do_sample=True, seed=3)
    everything = model4.generate("It was", top_k=0, **sampled)
    for top_k in (np.uint64(2**64 - 1), 2**64, 10**30):
        assert model4.generate("It was", top_k=top_k, **sampled) == everything
    assert model4.generate("It was", max_new_tokens=np.int8(5)) == model4.generate("It was", max_new_tokens=5)


def test_a_huge_max_new_tokens_streams_until_the_caller_stops(model4):
    first = list(itertools.islice(model4.stream("It was", max_new_tokens=2**63), 5))
    assert "".join(first) and len(first) == 5


_INTERRUPTED_GENERATION = """
import sys, time, memlm
model = memlm.train(sys.argv[1], width=4, algorithms="igtree,ib1")
print("ready", flush=True)
started = time.perf_counter()
try:
    model.generate("It was", max_new_tokens=2**63, algorithm="ib1", do_sample=True, seed=1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_stops_a_long_generation():
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_GENERATION, str(TEST_TEXT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert out == "interrupted\n"
    assert time.perf_counter() - sent < 2.0
