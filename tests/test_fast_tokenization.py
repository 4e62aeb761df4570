"""The tiktoken fast path of TokenizerSpec gives exactly the ids of the tokenizers library, takes only
tokenizers exactly like GPT-2's, and leaves the rest (and every error) to tokenizers."""

import copy
import gzip
import json
import multiprocessing
import os
import pickle
import random
import re
import threading
import unicodedata

import numpy as np
import pytest
import tiktoken
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from memlm import tokenization
from memlm.corpus import split_blocks
from memlm.errors import MemlmError
from memlm.tokenization import FAST_PATH_AFTER_CHARS, LONG_BLOCK_CHARS, TokenizerSpec, split_long

from conftest import ROOT, TRAIN_TEXT

SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (the project's workspace)")
#: Characters read from the start of each large corpus.
PREFIX_CHARS = 2_000_000


def reference(spec: TokenizerSpec, blocks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What encode_blocks gave before the fast path: each block with tokenizers (a long one in the pieces of
    split_long, ids concatenated), empty blocks dropped."""
    ids = []
    lengths = []
    for block in blocks:
        pieces = split_long(block) if len(block) > LONG_BLOCK_CHARS else [block]
        encodings = spec.tokenizer.encode_batch(pieces, add_special_tokens=False)
        block_ids = [i for enc in encodings for i in enc.ids]
        if block_ids:
            ids.extend(block_ids)
            lengths.append(len(block_ids))
    return np.array(ids, dtype=np.uint32), np.array(lengths, dtype=np.uint64)


def assert_same_blocks(spec: TokenizerSpec, blocks: list[str]) -> None:
    tokens, lengths = spec.encode_blocks(blocks)
    expected_tokens, expected_lengths = reference(spec, blocks)
    assert tokens.dtype == np.uint32 and lengths.dtype == np.uint64
    if not np.array_equal(tokens, expected_tokens):  # show the first block that differs
        for block in blocks:
            got = spec.encode_blocks([block])[0].tolist()
            assert got == reference(spec, [block])[0].tolist(), block[:200]
    assert np.array_equal(tokens, expected_tokens)
    assert np.array_equal(lengths, expected_lengths)


def hf_ids(spec: TokenizerSpec, text: str) -> list[int]:
    return spec.tokenizer.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def gpt2() -> TokenizerSpec:
    spec = TokenizerSpec.from_file()
    assert spec.fast_path is not None  # built now, whatever was encoded before
    return spec


def gpt2_data() -> dict:
    return json.loads(TokenizerSpec.from_file().json)


def read_corpus(name: str, chars: int | None = None) -> str:
    with gzip.open(SHARED / name, "rt", encoding="utf-8") as f:
        return f.read(chars) if chars is not None else f.read()


# --- eligibility -------------------------------------------------------------------------------------


def test_gpt2_has_a_fast_path(gpt2):
    fast = gpt2.fast_path
    assert fast.added == ("<|endoftext|>",)
    assert fast.ids is not None  # GPT-2's single bytes are not ids 0..255 in byte order
    assert fast.ids.dtype == np.uint16 and fast.ids.size == 50256
    assert fast.takes("plain text") and fast.takes("naïve café 😀")
    assert not fast.takes("a <|endoftext|> b") and not fast.takes("lone \ud800") and not fast.takes(b"bytes")


def small_bpe(**changes) -> Tokenizer:
    """A byte-level BPE of 600 tokens trained on the sample corpus with the tokenizers library (like
    GPT-2's: no normalizer, ByteLevel pre-tokenizer without a prefix space), with ``changes`` made."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAIN_TEXT.read_text(encoding="utf-8").split("\n\n"), trainer)
    for name, value in changes.items():
        setattr(tokenizer, name, value)
    return tokenizer


SAMPLE = [
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition,",
    "ﬁne ＦＵＬＬＷＩＤＴＨ Ⅻ ½ ² café CAFÉ e\u0301 123456 <|endoftext|>x  \t\n",
    "",
    "x" * (LONG_BLOCK_CHARS + 10),
    "It's THE end'S 'll",
]


def test_a_small_trained_bpe_like_gpt2_is_taken():
    tokenizer = small_bpe()
    spec = TokenizerSpec(json=tokenizer.to_str(), name="small.json")
    assert spec.fast_path is not None
    assert spec.fast_path.ids is not None  # the trainer numbers <|endoftext|> 0, then the alphabet
    assert_same_blocks(spec, SAMPLE + split_blocks(TRAIN_TEXT.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "changes",
    [
        {"normalizer": normalizers.NFKC()},
        {"normalizer": normalizers.Lowercase()},
        {"pre_tokenizer": pre_tokenizers.ByteLevel(add_prefix_space=True)},
        {"pre_tokenizer": pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)},
        {"pre_tokenizer": pre_tokenizers.Sequence([pre_tokenizers.Digits(), pre_tokenizers.ByteLevel(False)])},
        {
            "post_processor": processors.TemplateProcessing(
                single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)]
            )
        },
    ],
    ids=["nfkc", "lowercase", "prefix_space", "no_regex", "digits", "template"],
)
def test_other_tokenizers_fall_back(changes):
    tokenizer = small_bpe(**changes)
    spec = TokenizerSpec(json=tokenizer.to_str(), name="small.json")
    assert spec.fast_path is None
    assert_same_blocks(spec, SAMPLE)
    assert spec.encode(SAMPLE[1]) == hf_ids(spec, SAMPLE[1])


def test_a_word_level_tokenizer_falls_back():
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "end": 2, ",": 3}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    spec = TokenizerSpec(json=tokenizer.to_str(), name="words.json")
    assert spec.fast_path is None
    assert_same_blocks(spec, ["the end, the", "", "nothing known here", "the " * 20000])


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["model"].update(dropout=0.1),
        lambda d: d["model"].update(continuing_subword_prefix="##"),
        lambda d: d["model"].update(end_of_word_suffix="</w>"),
        lambda d: d["model"].update(ignore_merges=True),
        lambda d: d["model"].update(byte_fallback=True),
        lambda d: d.update(truncation={"direction": "Right", "max_length": 5, "strategy": "LongestFirst", "stride": 0}),
        lambda d: d.update(normalizer={"type": "NFC"}),
        lambda d: d.update(unknown_field=1),
        lambda d: d["pre_tokenizer"].update(add_prefix_space=True),
        lambda d: d["model"]["merges"].append(d["model"]["merges"][5]),  # the same result twice
    ],
    ids=[
        "dropout",
        "prefix",
        "suffix",
        "ignore_merges",
        "byte_fallback",
        "truncation",
        "nfc",
        "field",
        "space",
        "twice",
    ],
)
def test_gpt2_json_changed_is_not_taken(gpt2, change):
    data = gpt2_data()
    change(data)
    assert tokenization.FastPath.build(json.dumps(data), gpt2.tokenizer, np.uint16) is None


def crossed_merges_json() -> str:
    """A byte-level BPE whose merges are bc, ab, then ab + c: tokenizers encodes "abc" as a, bc (ab never
    forms), while tiktoken, ranking "abc" by its bytes, would merge a + bc."""
    alphabet = tokenization.byte_alphabet()
    data = gpt2_data()
    data["added_tokens"] = []
    data["model"]["vocab"] = {char: i for i, char in enumerate(alphabet)} | {"bc": 256, "ab": 257, "abc": 258}
    data["model"]["merges"] = [["b", "c"], ["a", "b"], ["ab", "c"]]
    return json.dumps(data)


def test_merges_that_tiktoken_would_cross_are_not_taken():
    spec = TokenizerSpec(json=crossed_merges_json(), name="crossed.json")
    ranks = {bytes([byte]): byte for byte in range(256)} | {b"bc": 256, b"ab": 257, b"abc": 258}
    naive = tiktoken.Encoding("naive", pat_str=tokenization.GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    assert hf_ids(spec, "abc") == [ord("a"), 256] and naive.encode_ordinary("abc") == [258]  # they differ
    assert spec.fast_path is None
    assert spec.encode("abc abcabc") == hf_ids(spec, "abc abcabc")


# --- the same ids ------------------------------------------------------------------------------------


@needs_shared
def test_persuasion_whole(gpt2):
    blocks = split_blocks(read_corpus("austen_persuasion_test.txt.gz"))
    assert all(gpt2.fast_path.takes(block) for block in blocks)
    assert_same_blocks(gpt2, blocks)
    text = " ".join(blocks)  # one long text: Model.score's way, through encode_stream in pieces
    assert gpt2.encode(text) == reference(gpt2, [text])[0].tolist()


@needs_shared
@pytest.mark.parametrize("name", ["austen_train.txt.gz", "kjv.txt.gz", "docs_rst.txt.gz"])
def test_corpus_prefixes(gpt2, name):
    assert_same_blocks(gpt2, split_blocks(read_corpus(name, PREFIX_CHARS)))


NASTY = [
    "",
    " ",
    "a",
    "Hello, world! It's a test.",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇳🇱🇬🇧 ❤️ 🏳️‍🌈 x😀y 😀😀😀",
    "combining e\u0301 a\u0300\u0301\u0302 Z\u0351\u0300\u036b\u0346a\u0308\u0331l\u0301g\u0350o \u0301lead",
    "CJK 漢字とひらがなとカタカナ 한국어 中文，标点。「引用」",
    "RTL עברית \u200fmark\u200e العربية ١٢٣ \u202eoverride\u202c",
    "digits 1234567890 00000000000000 3.14159 1,000,000 ١٢٣٤ ๑๒๓ ²³¹ ½¾ Ⅻ ⅷ ① ０１２",
    "many spaces" + " " * 50 + "end   " + " " * 7,
    "tabs\tand\t\tnewlines\n\n\nand\r\ncarriage\rreturns \t\n \r\n\t  x \n",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D it's IT'S we'LL ’s ''s 's's x's",
    "nbsp\u00a0x\u00a0\u00a0y \u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000z",
    "\u1680ogham \u0085nel \u2028line \u2029para \u180emongolian \u200bzwsp \ufeffbom \u00adshy",
    "controls \x00\x01\x02\x1b\x1c\x1d\x1e\x1f\x7f\x80\x9f end",
    "<|endoftext|>",
    "a<|endoftext|>b <|endoftext|> c<|endoftext|><|endoftext|>",
    "almost <|endoftext| and |endoftext|> <|ENDOFTEXT|>",
    "byte-level alphabet itself: ĠĊĉ ĀāĂ Ġthe Ãł",
    "private \ue000\uf8ff noncharacters \ufffe\uffff \U0010ffff \U000f0000 astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈",
    "a" * 70_000,
    "b" * 65_537 + " tail",
    "é" * 70_000,
    "😀" * 70_000,
    "7" * 70_001,
    " " * 70_000,
    "!" * 70_000,
    "\n" * 70_000,
    "ab" * 40_000,
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_strings(gpt2, text):
    fast = gpt2.fast_path
    if fast.takes(text):
        assert fast.encode(text) == hf_ids(gpt2, text)  # whole, however long
    else:
        assert "<|endoftext|>" in text
    expected = reference(gpt2, [text])[0].tolist()
    assert gpt2.encode(text) == (expected if len(text) > LONG_BLOCK_CHARS else hf_ids(gpt2, text))


def test_nasty_strings_in_one_batch(gpt2):
    assert_same_blocks(gpt2, NASTY + NASTY[::-1])


def test_random_words(gpt2):
    rng = random.Random(7)
    alphabet = "aeiouxyz  \n\t'’sSdDmM0123456789.,!?-_éüßø漢字😀\u00a0\u0301<|>"
    blocks = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))) for _ in range(2000)]
    assert_same_blocks(gpt2, blocks)


def test_random_ascii_takes_the_core_encoder(gpt2):
    """ASCII blocks go to the core's encoder (rust/core/src/ascii_bpe.rs): every ASCII character, with
    GPT-2's contractions, white space runs and long words weighted up, gives tokenizers' ids."""
    rng = random.Random(11)
    common = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", " ", "  ", "\n", "\r\n", "\t", "\x0b", "\x0c", "e", "7"]
    rare = [chr(c) for c in range(128)] + ["antidisestablishmentarianism", "=" * 300, " " * 50, "0" * 40]
    blocks = [
        "".join(rng.choice(common) if rng.random() < 0.6 else rng.choice(rare) for _ in range(rng.randrange(0, 300)))
        for _ in range(3000)
    ]
    assert all(block.isascii() for block in blocks)
    assert_same_blocks(gpt2, blocks)
    for block in blocks[:300]:
        assert gpt2.fast_path.encode(block) == hf_ids(gpt2, block)


def test_every_code_point_is_classed_alike(gpt2):
    """GPT-2's regex cuts text by letters, numbers and white space: tokenizers' (Oniguruma) and tiktoken's
    (fancy-regex) Unicode tables must agree on every character. All of the BMP, every 17th code point
    beyond (a sweep of all 1,112,064 with a longer probe agreed too, but takes a minute)."""
    points = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF] + list(range(0x10000, 0x110000, 17))
    blocks = [
        " ".join(f"a{c}b {c}1{c}  {c}\n'{c}" for c in map(chr, points[at : at + 64]))
        for at in range(0, len(points), 64)
    ]
    assert_same_blocks(gpt2, blocks)


def permuted_gpt2(seed: int | None) -> TokenizerSpec:
    """GPT-2's tokenizer with its ids renumbered consistently (vocab and added token): by a random
    permutation, or (seed None) so that they are tiktoken's ranks (bytes, then merges, then the added token)."""
    data = gpt2_data()
    vocab = data["model"]["vocab"]
    if seed is None:
        alphabet = tokenization.byte_alphabet()
        order = alphabet + ["".join(pair) for pair in data["model"]["merges"]] + ["<|endoftext|>"]
        ranks = {token: rank for rank, token in enumerate(order)}
        new = {old: ranks[token] for token, old in vocab.items()}
    else:
        permutation = np.random.default_rng(seed).permutation(len(vocab)).tolist()
        new = {old: permutation[old] for old in vocab.values()}
    data["model"]["vocab"] = {token: new[old] for token, old in vocab.items()}
    for added in data["added_tokens"]:
        added["id"] = new[added["id"]]
    return TokenizerSpec(json=json.dumps(data), name="permuted.json")


@needs_shared
@pytest.mark.parametrize("seed", [1, None], ids=["random", "ranks"])
def test_permuted_ids(gpt2, seed):
    spec = permuted_gpt2(seed)
    assert spec.fast_path is not None
    assert (spec.fast_path.ids is None) == (seed is None)
    blocks = split_blocks(read_corpus("austen_persuasion_test.txt.gz"))
    tokens, _ = spec.encode_blocks(blocks)
    assert not np.array_equal(tokens, gpt2.encode_blocks(blocks)[0])  # other ids...
    assert_same_blocks(spec, blocks + NASTY)  # ... and still tokenizers' own
    assert spec.encode("Persuasion <|endoftext|> ends") == hf_ids(spec, "Persuasion <|endoftext|> ends")
    assert spec.encode("Persuasion ends") == hf_ids(spec, "Persuasion ends")


# --- what encode_stream keeps ------------------------------------------------------------------------


def test_stream_keeps_long_blocks_progress_and_dtype(gpt2):
    words = "The quick brown fox jumps over the lazy dog, it's said. "
    blocks = ["", words * 3000, "short", "", "<|endoftext|> " + words * 10, words[:-1] * 3000, ""]
    calls = []
    tokens, lengths = gpt2.encode_stream(
        ((i / len(blocks), b) for i, b in enumerate(blocks)), progress=lambda *a: calls.append(a)
    )
    expected_tokens, expected_lengths = reference(gpt2, blocks)
    assert tokens.dtype == np.uint16 and np.array_equal(tokens, expected_tokens)
    assert np.array_equal(lengths, expected_lengths) and len(lengths) == 4
    assert calls[-1] == (1.0, tokens.size) and [c[1] for c in calls] == sorted(c[1] for c in calls)


def test_many_threads(gpt2, monkeypatch):
    blocks = split_blocks(TRAIN_TEXT.read_text(encoding="utf-8"))
    expected = reference(gpt2, blocks)
    for threads in ("2", "3"):
        monkeypatch.setenv("RAYON_NUM_THREADS", threads)
        assert tokenization.encode_threads() == int(threads)
        tokens, lengths = gpt2.encode_blocks(blocks)
        assert np.array_equal(tokens, expected[0]) and np.array_equal(lengths, expected[1])
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    assert tokenization.encode_threads() == 1


def test_fast_path_is_built_once_text_is_long_enough():
    # the same tokenizer, another JSON: not built in this process yet
    spec = TokenizerSpec(json=json.dumps(gpt2_data(), indent=1), name="copy.json")
    assert spec.encode("short text") == hf_ids(spec, "short text")
    assert spec.sha256 not in tokenization._FAST_PATHS  # a short text does not pay for building it
    text = "word " * (FAST_PATH_AFTER_CHARS // 5 + 1)
    assert spec.encode_blocks([text])[0].tolist() == reference(spec, [text])[0].tolist()
    assert tokenization._FAST_PATHS[spec.sha256] is spec.fast_path is not None
    again = TokenizerSpec(json=spec.json, name="again.json")
    assert again.encode("short text") == hf_ids(spec, "short text")
    assert again._fast is spec.fast_path  # built once


def long_text() -> str:
    """More than FAST_PATH_AFTER_CHARS characters, the sample corpus and the nasty strings (no added token)."""
    text = TRAIN_TEXT.read_text(encoding="utf-8") + " ".join(t for t in NASTY if "<|endoftext|>" not in t)
    assert len(text) > FAST_PATH_AFTER_CHARS
    return text


def test_pickled_and_copied_before_and_after_the_fast_path(gpt2):
    text = long_text()
    fresh = TokenizerSpec(json=json.dumps(gpt2_data(), indent=2), name="fresh.json")  # not built yet
    assert fresh.sha256 not in tokenization._FAST_PATHS
    expected = reference(fresh, [text])[0].tolist()
    pickled, deep = pickle.loads(pickle.dumps(fresh)), copy.deepcopy(fresh)
    assert not fresh._fast_resolved and fresh.sha256 not in tokenization._FAST_PATHS
    assert pickled.encode("short text, it's") == hf_ids(fresh, "short text, it's")
    assert pickled.encode(text) == expected
    assert pickled._fast_resolved and pickled.fast_path is not None  # built by the copy, for the process:
    assert fresh.fast_path is pickled.fast_path and fresh._fast_resolved  # found by the original
    copies = [deep, pickle.loads(pickle.dumps(fresh)), copy.deepcopy(fresh), copy.copy(fresh)]
    old = TokenizerSpec.__new__(TokenizerSpec)  # as pickled by the memlm before: its own sentinel as _fast
    old.__setstate__({"json": fresh.json, "name": fresh.name, "_tokenizer": None, "_fast": object(), "_slow_chars": 9})
    for spec in [*copies, old]:
        assert spec == TokenizerSpec(json=fresh.json, name="fresh.json", _tokenizer=spec._tokenizer)
        assert spec._fast is None and not spec._fast_resolved and spec._slow_chars == 0  # none of it copied
        assert spec.encode("short text, it's") == hf_ids(fresh, "short text, it's")
        assert spec.encode(text) == expected
        assert spec.fast_path is fresh.fast_path  # the process's, found again
    for spec in (gpt2, fresh):  # the fast path (tiktoken's ranks) is not pickled
        assert not {"_fast", "_fast_resolved", "_slow_chars", "_digest"} & spec.__getstate__().keys()


def test_fast_path_is_built_once_by_many_threads(monkeypatch):
    spec = TokenizerSpec(json=json.dumps(gpt2_data(), indent=3), name="threads.json")
    builds = []
    build = tokenization.FastPath.build

    def counted(*args):
        builds.append(threading.get_ident())
        return build(*args)

    monkeypatch.setattr(tokenization.FastPath, "build", counted)
    specs = [spec] * 2 + [TokenizerSpec(json=spec.json, name=f"{i}.json") for i in range(2)]
    barrier = threading.Barrier(len(specs))
    got = [None] * len(specs)

    def run(i):
        barrier.wait()
        got[i] = specs[i].fast_path

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and got[0] is not None and all(fast is got[0] for fast in got)


def test_characters_are_counted_by_many_threads(monkeypatch):
    monkeypatch.setattr(tokenization, "FAST_PATH_AFTER_CHARS", 1 << 40)  # never built here
    spec = TokenizerSpec(json=json.dumps(gpt2_data(), indent=4), name="count.json")
    threads = [threading.Thread(target=lambda: [spec._fast_path_for(3) for _ in range(20_000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spec._slow_chars == 4 * 20_000 * 3 and not spec._fast_resolved


def test_one_thread_pool_per_process(gpt2, monkeypatch):
    # not ASCII: tiktoken's pool encodes them (the core's encoder of ASCII text runs on rayon's threads)
    blocks = [block + " é" for block in split_blocks(TRAIN_TEXT.read_text(encoding="utf-8"))]
    monkeypatch.setenv("RAYON_NUM_THREADS", "2")
    gpt2.encode_blocks(blocks)
    pool = tokenization._POOL
    assert pool is not None and pool[0] == 2
    gpt2.encode_blocks(blocks)
    assert tokenization._POOL is pool  # the same pool, not one per batch
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    gpt2.encode_blocks(blocks)
    assert tokenization._POOL[0] == 3


# --- the probe -----------------------------------------------------------------------------------------


def test_probe_covers_the_unicode_classes():
    categories = {unicodedata.category(char) for char in tokenization.PROBE}
    assert categories >= {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Zs", "Zl", "Zp"}
    assert categories >= {"Cc", "Cf", "Co", "Cn", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"}
    assert 300 <= len(tokenization.PROBE) <= 1000 and "<|endoftext|>" not in tokenization.PROBE
    for contraction in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'D"):
        assert contraction in tokenization.PROBE


@pytest.mark.parametrize(
    "old, new",
    [
        (r"\p{N}", r"\p{Nd}"),  # a table without ½ or Ⅻ
        (r"\p{L}", r"[\p{L}--\p{Greek}]"),  # without Greek letters
        (r"\p{L}", r"[\p{L}--\x{1E290}]"),  # an older one: without Unicode 14's Toto
        (r"\p{L}", r"[\p{L}\x{1E6C0}]"),  # a newer one: with a letter Unicode 16 has not
        (r"\s", r"[\s--\x{1680}]"),  # without the Ogham space
        (r"\s", r"[\s\x{180E}]"),  # from before Unicode 6.3: with the Mongolian vowel separator
    ],
    ids=["numbers", "greek", "unicode14", "unicode17", "ogham", "mongolian"],
)
def test_probe_refuses_a_regex_engine_that_classes_otherwise(gpt2, monkeypatch, old, new):
    """tiktoken with a regex engine whose Unicode tables differ (the regex changed to the same effect)
    cuts the probe into other pieces: no fast path, with a warning."""
    monkeypatch.setattr(tokenization, "GPT2_PATTERN", tokenization.GPT2_PATTERN.replace(old, new))
    assert new in tokenization.GPT2_PATTERN
    with pytest.warns(RuntimeWarning, match="tokenise a probe text differently"):
        assert tokenization.FastPath.build(gpt2.json, gpt2.tokenizer, np.uint16) is None


def test_probe_ids_agree_between_added_tokens(gpt2):
    fast = gpt2.fast_path  # built with GPT-2's regex
    assert tokenization._same_pieces(gpt2.tokenizer, tokenization.PROBE)
    assert fast.agrees(gpt2.tokenizer, tokenization.PROBE)
    assert fast.agrees(gpt2.tokenizer, "a <|endoftext|>b" + tokenization.PROBE + "<|endoftext|>")
    assert fast.encode("a <|endoftext|>") != hf_ids(gpt2, "a <|endoftext|>")  # why it is cut there


# --- errors ------------------------------------------------------------------------------------------

LONE = "abc \ud800 def"


@pytest.mark.parametrize("fallback", [False, True], ids=["gpt2", "fallback"])
def test_errors_are_the_same(gpt2, fallback):
    spec = TokenizerSpec(json=small_bpe(normalizer=normalizers.NFC()).to_str(), name="nfc.json") if fallback else gpt2
    with pytest.raises(
        MemlmError, match=re.escape("the text is not valid Unicode: a lone surrogate '\\ud800' at position 4")
    ):
        spec.encode(LONE)
    with pytest.raises(
        MemlmError, match=re.escape("the text is not valid Unicode: a lone surrogate '\\udc80' at position")
    ):
        spec.encode("x " * LONG_BLOCK_CHARS + "\udc80")
    with pytest.raises(MemlmError, match=re.escape("give the text as str, not bytes (decode the bytes first)")):
        spec.encode(b"abc")
    with pytest.raises(MemlmError, match=re.escape("give the text as str, got NoneType")):
        spec.encode(None)
    bad = "a block of the text is not valid Unicode: a lone surrogate '\\udcff' at position"
    with pytest.raises(MemlmError, match=re.escape(f"{bad} 2")):  # the first bad block of the batch
        spec.encode_blocks(["fine", "ok <|endoftext|>", "no\udcff", LONE, "fine"])
    with pytest.raises(MemlmError, match=re.escape("give a block of the text as str, not bytes")):
        spec.encode_blocks(["fine", b"bytes", LONE])
    with pytest.raises(MemlmError, match=re.escape(f"{bad} 8")):  # in the second piece of a long block
        spec.encode_blocks(["x" * (LONG_BLOCK_CHARS + 5) + " no\udcff"])


def test_ascii_probe_refuses_a_core_encoder_that_cuts_otherwise(gpt2, monkeypatch):
    """The core's ASCII encoder is checked on ASCII_PROBE too: one that classes a vertical tab as a space
    character no more (simulated by replacing it) leaves no fast path, with a warning."""
    real = tokenization.AsciiBpe

    class Otherwise:
        def __init__(self, tokens):
            self.inner = real(tokens)

        def encode(self, text):
            return self.inner.encode(text.replace("\x0b", "!"))

    monkeypatch.setattr(tokenization, "AsciiBpe", Otherwise)
    with pytest.warns(RuntimeWarning, match="ASCII encoder and tokenizers .* tokenise a probe text differently"):
        assert tokenization.FastPath.build(gpt2.json, gpt2.tokenizer, np.uint16) is None


def _encode_in_child(spec: TokenizerSpec, blocks: list[str], expected: list[int]) -> None:
    tokens, _ = spec.encode_blocks(blocks)
    os._exit(0 if tokens.tolist() == expected else 3)


def test_a_forked_child_encodes_after_the_parent_used_the_core_threads(gpt2, monkeypatch):
    """rayon's threads do not come with a fork: a child forked after the parent encoded a batch on them
    encodes on its own thread (before, it waited forever)."""
    monkeypatch.setenv("RAYON_NUM_THREADS", "2")
    blocks = split_blocks(TRAIN_TEXT.read_text(encoding="utf-8"))[:300]
    assert all(block.isascii() for block in blocks)
    expected = gpt2.encode_blocks(blocks)[0].tolist()  # the parent's rayon pool now has its threads
    child = multiprocessing.get_context("fork").Process(target=_encode_in_child, args=(gpt2, blocks, expected))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung encoding a batch")
    assert child.exitcode == 0
