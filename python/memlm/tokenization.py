"""Tokenisation with Hugging Face ``tokenizers``: the tokenizer's identity, and batch encoding of blocks.

A byte-level BPE tokenizer exactly like GPT-2's is encoded by its fast path instead, with the same ids: ASCII
text by the core's encoder (``rust/core/src/ascii_bpe.rs``, about 20 times faster than ``tokenizers``
single-threaded), other text by ``tiktoken`` (about 5 times faster): see :class:`FastPath` for when, and why
the ids are the same."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import re
import threading
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer, pre_tokenizers

from memlm import checks
from memlm._core import AsciiBpe
from memlm.errors import MemlmError, ModelFormatError

if TYPE_CHECKING:  # imported where the pool is made: only large fast-path batches need it
    from concurrent.futures import ThreadPoolExecutor

#: The GPT-2 byte-level BPE tokenizer shipped with memlm (the default).
DEFAULT_TOKENIZER = Path(__file__).parent / "data" / "gpt2-tokenizer.json"

#: Blocks encoded per ``encode_batch`` call: large enough to keep all cores busy, small enough to bound memory.
ENCODE_CHUNK = 4096
#: Characters per streamed batch at most: an Encoding costs ~100 bytes per token while it lives.
ENCODE_CHARS = 1 << 20
#: Characters of one block tokenised in one call at most: a longer block (a corpus on one line) is
#: tokenised in pieces of at most this length, cut before a space that follows a non-space (where the
#: pre-tokenizer of a byte-level BPE such as GPT-2's ends a word anyway), and stays one block: its ids are
#: concatenated. Tokenising a whole long block in one call would take ~200 bytes per character at once;
#: pieces of this size are batched like short blocks.
LONG_BLOCK_CHARS = 1 << 16


def split_long(text: str, limit: int = LONG_BLOCK_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, each cut just before a space that follows a
    non-space (the last such space of its window), or at ``limit`` where a window holds none. The pieces
    concatenated are ``text``; a text of at most ``limit`` characters is one piece."""
    if limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    pieces = []
    start = 0
    while len(text) - start > limit:
        cut = _cut(text, start, start + limit)
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _cut(text: str, low: int, high: int) -> int:
    """The last position p in (low, high] where text[p] is a space after a non-space; ``high`` if none."""
    at = text.rfind(" ", low + 1, high + 1)
    while at > low:
        if not text[at - 1].isspace():
            return at
        at = text.rfind(" ", low + 1, at)
    return high


#: GPT-2's pre-tokenizer regex (the ByteLevel pre-tokenizer's, ``use_regex``), as tiktoken spells it.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
#: Characters a spec tokenises with ``tokenizers`` before it builds its fast path (which takes 0.2-0.3 s, once
#: per process and tokenizer JSON): about what ``tokenizers`` encodes in that time, so that a short text
#: does not pay for it and a long one hardly notices.
FAST_PATH_AFTER_CHARS = 1 << 19
#: Characters of a batch at least for the fast path to encode it in several threads.
PARALLEL_CHARS = 1 << 16
#: Merge results joined by spaces per text when they are checked to encode as themselves.
_CHECK_WORDS = 4096
#: What :data:`PROBE` holds, each between "x" and ".": letters of many scripts (some added in Unicode 14 to 16,
#: where the tables of two versions most likely differ, and two code points that Unicode 16 leaves unassigned),
#: combining marks, digits and other numbers of several scripts, emoji.
_PROBE_WORDS = (
    *("Ærøskøbing", "naïve", "façade", "Straße", "Łódź", "İstanbul", "ǅemal", "ǈ", "ŉ", "ﬁne", "ＦＵＬＬ", "ʰʲ"),
    *("ˈstress", "ꟀꟁꟋ", "Ελληνικά", "ἀρχῇ", "Кириллица", "ёж", "Հայերեն", "ქართული", "עִבְרִית", "العَرَبِيَّة", "ࡰ"),
    *("फ़ि", "हिन्दी", "বাংলা", "தமிழ்", "ภาษาไทย", "አማርኛ", "ᏣᎳᎩ", "한국어", "ひらがな・カタカナー", "漢字〆々", "𠀀𰀀𱍐𮯰"),
    *("ᠮᠣᠩᠭᠣᠯ", "བོད་", "ខ្មែរ", "မြန်မာ", "සිංහල", "𝔘𝔫𝔦", "𐍈"),
    *("\U0001e290\U00011f04\U0001e030", "\U00010d4a\U000105c0\U0001e5d0", "\U00010940\U0001e6c0"),
    *("e\u0301", "a\u0308\u0331", "\u0301", "Z\u0351\u0300\u036b", "1\u20dd", "k\u0489"),
    *("0123", "3.14", "٠١٢٣", "۴۵۶", "०१२३", "๓๔", "０１２", "1½", "mc²", "²³", "Ⅻ", "ⅷ", "①②", "𝟘𝟙", "፩፪"),
    *("\U00010d40\U0001e5f1\U00016d70", "😀😃", "👍🏽", "👨\u200d👩\u200d👧", "🇳🇱🇬🇧", "❤\ufe0f"),
    *("🏳\ufe0f\u200d🌈", "#\ufe0f\u20e3"),
)
#: The white space and invisible characters :data:`PROBE` holds, each between "x" and ".".
_PROBE_SPACES = (
    "\u00a0\u2002\u2003\u2009\u200a\u202f\u205f\u3000\u1680\u0085\u2028\u2029\u180e"
    "\u200b\u200c\u200d\ufeff\u00ad\u200e\ue000\U000f0000\x00\x1b\x7f\x9f"
)
#: A text that a fast path must cut into the pieces ``tokenizers``' pre-tokenizer does, and encode as
#: ``tokenizers`` does, when it is built, or it is not used. The ids are the same only while tiktoken's regex
#: engine and ``tokenizers``' class every code point alike as a letter, number, space or other
#: (tests/test_fast_tokenization.py checks that for the versions installed when it runs); this catches a
#: version of either whose Unicode tables differ on a character it holds: each sample lies between a letter
#: and punctuation, so that each class gives other pieces. Besides: GPT-2's contractions, runs of white space,
#: punctuation. Not random: the same text always. About 700 characters: checking it adds about 3 ms to
#: building the fast path (which takes about 0.25 s).
PROBE = (
    "It's what we'll do, they've said; we're sure you'd agree, I'm told. DON'T, IT'S, THEY'RE, we'D 'tis ’s ''s\n"
    + "".join(f" x{word}." for word in _PROBE_WORDS)
    + "".join(f"x{space}." for space in _PROBE_SPACES)
    + "\n   spaces \t\ttabs\r\n\n  \n\x0b\x0c end  \n"
    + "¡¿Qué? «quote» „Zitat“ — … · ※ 、。「引用」 ¶§©™€£¥$%&*@#~^`|\\/<>[]{}()=+-_;:!?. "
)
#: ASCII text that the core's ASCII encoder must encode as ``tokenizers`` does before the fast path is used:
#: each ASCII character alone, after a letter, a digit, a space and itself; contractions; white space runs.
ASCII_PROBE = "".join(f"{c} a{c} 1{c}  {c}{c}x\n" for c in map(chr, range(128))) + (
    "it's we'll they've 'RE 're'v ''s  \t\n\n \r\n\x0b\x0c end  "
)

_TOP_KEYS = frozenset(
    ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor"]
    + ["decoder", "model"]
)
_BYTE_LEVEL_KEYS = frozenset(["type", "add_prefix_space", "trim_offsets", "use_regex"])
_BPE_KEYS = frozenset(
    ["type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", "byte_fallback"]
    + ["ignore_merges", "vocab", "merges"]
)


def byte_alphabet() -> list[str]:
    """The character that stands for each byte in the vocab and merges of a byte-level BPE (GPT-2's
    table): a byte that is a printable Latin-1 character other than space and soft hyphen stands for
    itself, the other 68 bytes for U+0100, U+0101, ... in byte order."""
    alphabet = []
    spare = 0x100
    for byte in range(256):
        if 0x21 <= byte <= 0x7E or 0xA1 <= byte <= 0xAC or byte >= 0xAE:
            alphabet.append(chr(byte))
        else:
            alphabet.append(chr(spare))
            spare += 1
    return alphabet


def _latin1_table() -> dict[int, int]:
    """A ``str.translate`` table from each character of the byte alphabet to the Latin-1 character of its
    byte; the Latin-1 characters outside the alphabet become U+FFFF, so that encoding the result as Latin-1
    fails on them as on every other character outside the alphabet."""
    table = dict.fromkeys(range(256), 0xFFFF)
    table.update({ord(char): byte for byte, char in enumerate(byte_alphabet())})
    return table


_LATIN1 = _latin1_table()


#: The thread pool that fast paths encode batches in: (threads, pool), made on first use and again when
#: :func:`encode_threads` changes (the pool it replaces ends its threads once no batch uses it).
_POOL: tuple[int, ThreadPoolExecutor] | None = None
#: Held while the pool is looked up or made; held while a fast path is built (so that one is built once per
#: process and tokenizer, while other threads wait for it); held while a spec counts the characters it has
#: tokenised before its fast path (so that no count is lost).
_POOL_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()
_COUNT_LOCK = threading.Lock()


#: Whether this process is a forked child: rayon's pool (the core's threads) did not come with it, and a
#: batch handed to it would wait for them forever, so the core's ASCII encoder runs on the calling thread.
_FORKED = False


def _after_fork_in_child() -> None:
    """A forked child has only the thread that forked: new locks (another thread may have held one), no
    pool (its threads are gone), and no use of rayon's."""
    global _POOL, _POOL_LOCK, _BUILD_LOCK, _COUNT_LOCK, _FORKED
    _POOL, _POOL_LOCK, _BUILD_LOCK, _COUNT_LOCK = None, threading.Lock(), threading.Lock(), threading.Lock()
    _FORKED = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _encode_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads for encoding batches."""
    from concurrent.futures import ThreadPoolExecutor

    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != threads:
            # the pool replaced is not shut down: a batch may still be using it; unreferenced, its idle
            # threads end by themselves
            _POOL = (threads, ThreadPoolExecutor(threads, thread_name_prefix="memlm-encode"))
        return _POOL[1]


def encode_threads() -> int:
    """Threads for encoding a batch, as ``tokenizers`` decides for its own: one when TOKENIZERS_PARALLELISM
    says no, else RAYON_NUM_THREADS when it is a positive number, else the CPUs this process may run on."""
    if os.environ.get("TOKENIZERS_PARALLELISM", "true").lower() in ("", "off", "false", "f", "no", "n", "0"):
        return 1
    threads = os.environ.get("RAYON_NUM_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        return int(threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class FastPath:
    """The core's ASCII encoder and ``tiktoken`` in the place of a byte-level BPE tokenizer exactly like
    GPT-2's, with the same ids.

    Why the ids are the same. Both cut a text into pieces with GPT-2's regex (the two regex engines class
    every code point alike: tests/test_fast_tokenization.py) and encode each piece on its own, starting
    from its bytes and merging one adjacent pair at a time, the leftmost of equals: ``tokenizers`` the pair
    that comes first in the merges list, ``tiktoken`` the pair whose bytes together have the lowest rank,
    ranks being the 256 bytes, then merge i's result at 256 + i (and it takes a piece that is a token
    whole). With distinct merge results, the two rank a pair alike unless its tokens x, y are not a merge
    while x + y is the result t of one: tiktoken may merge such a pair, tokenizers never does. Say the two
    first part ways on a piece with such x, y side by side. Every merge so far inside x + y was the lowest
    pair of the piece, so of x + y alone: ``tokenizers`` given t alone makes the same merges, reaches
    x, y and stops there (the one merge that makes t is not x, y). So if ``tokenizers`` encodes each merge
    result as that one token, which :meth:`build` checks for all of them, the two never part ways. The
    regex engines' Unicode tables come with their versions: :meth:`build` also checks that the two encode
    :data:`PROBE` alike. ASCII text goes to the core's encoder, which cuts pieces by GPT-2's regex read on ASCII
    classes and merges by tiktoken's rule (so the same ids); :meth:`build` checks it on :data:`ASCII_PROBE`.

    Which texts it takes: a str of valid Unicode (tiktoken would replace a lone surrogate where
    ``tokenizers`` raises, and the caller says what is wrong) holding none of the added tokens (such as
    ``<|endoftext|>``), which ``tokenizers`` splits out first and tiktoken's ``encode_ordinary`` does not."""

    def __init__(self, encoding, ascii_bpe: AsciiBpe, ids: np.ndarray | None, added: list[str]):
        self.encoding = encoding
        #: The core's encoder of ASCII texts (the same ranks as ``encoding``, about 10 times faster).
        self.ascii_bpe = ascii_bpe
        #: The tokenizer's id of each tiktoken rank; None when they are the same.
        self.ids = ids
        self.added = tuple(added)
        self._added = re.compile("|".join(map(re.escape, added))) if len(added) > 4 else None

    @classmethod
    def build(cls, json_text: str, tokenizer: Tokenizer, dtype: type) -> FastPath | None:
        """The fast path of a tokenizer, given its JSON, its parsed self and its id dtype; None unless it
        is a byte-level BPE exactly like GPT-2's (no normalizer, dropout, subword prefix or suffix, byte
        fallback, truncation or padding; a ByteLevel pre-tokenizer with GPT-2's regex and no prefix space;
        no post-processor other than a ByteLevel one, which only moves offsets; every byte a token, distinct
        merge results in the vocab, each of which it encodes as itself, ids that fit ``dtype``), or
        tiktoken is not installed, or (with a RuntimeWarning) tiktoken and ``tokenizers`` encode
        :data:`PROBE` differently, or the core's ASCII encoder and ``tokenizers`` :data:`ASCII_PROBE`."""
        try:
            data = json.loads(json_text)
        except ValueError:
            return None
        if not (isinstance(data, dict) and data.keys() <= _TOP_KEYS):
            return None
        if any(data.get(key) is not None for key in ("truncation", "padding", "normalizer")):
            return None
        pre, post, model = data.get("pre_tokenizer") or {}, data.get("post_processor"), data.get("model")
        if not (_byte_level(pre) and pre.get("add_prefix_space") is False and pre.get("use_regex", True) is True):
            return None
        if not (post is None or _byte_level(post)):
            return None
        if not (isinstance(model, dict) and model.keys() <= _BPE_KEYS and model.get("type") == "BPE"):
            return None
        if model.get("dropout") is not None or model.get("byte_fallback", False) is not False:
            return None
        if model.get("ignore_merges", False) is not False:
            return None
        if any(model.get(key) not in (None, "") for key in ("continuing_subword_prefix", "end_of_word_suffix")):
            return None
        added = data.get("added_tokens") or []
        if not isinstance(added, list) or not all(isinstance(t, dict) for t in added):
            return None
        contents = [t.get("content") for t in added]
        if not all(isinstance(content, str) for content in contents):
            return None
        vocab, merges = model.get("vocab"), model.get("merges")
        if not (isinstance(vocab, dict) and isinstance(merges, list)):
            return None
        built = _ranks(vocab, merges)
        if built is None:
            return None
        ranks, ids, results = built
        if ids.max(initial=0) > np.iinfo(dtype).max:
            return None
        if not _encode_as_themselves(tokenizer, results, ids[256:].tolist()):
            return None
        try:
            import tiktoken
        except ImportError:
            return None
        encoding = tiktoken.Encoding("memlm-gpt2-like", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
        same = np.array_equal(ids, np.arange(ids.size))
        ascii_bpe = AsciiBpe(sorted(ranks, key=ranks.__getitem__))
        fast = cls(encoding, ascii_bpe, None if same else ids.astype(dtype), contents)
        if not (_same_pieces(tokenizer, PROBE) and fast.agrees(tokenizer, PROBE)):
            why = f"tiktoken {getattr(tiktoken, '__version__', '?')} and tokenizers {_tokenizers_version()}"
            why += " tokenise a probe text differently (their regex engines class some character otherwise)"
        elif not fast.agrees(tokenizer, ASCII_PROBE):
            why = f"memlm's ASCII encoder and tokenizers {_tokenizers_version()} tokenise a probe text differently"
        else:
            return fast
        warnings.warn(f"{why}: memlm tokenises with tokenizers alone (the same ids, more slowly)", RuntimeWarning, 2)
        return None

    def agrees(self, tokenizer: Tokenizer, text: str) -> bool:
        """Whether this gives ``tokenizer``'s ids for each part of ``text`` between added tokens."""
        added = sorted(filter(None, self.added), key=len, reverse=True)
        parts = re.split("|".join(map(re.escape, added)), text) if added else [text]
        parts = [part for part in parts if part]
        expected = tokenizer.encode_batch(parts, add_special_tokens=False)
        return all(self.encode(part) == e.ids for part, e in zip(parts, expected, strict=True))

    def takes(self, text) -> bool:
        """Whether ``text`` is a str of valid Unicode without any added token, so that this gives its ids."""
        if not isinstance(text, str):
            return False
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate
                return False
        if self._added is not None:
            return self._added.search(text) is None
        return all(token not in text for token in self.added)

    def encode(self, text: str) -> list[int]:
        """The tokenizer's ids of a text this :meth:`takes`."""
        ranks = self.ascii_bpe.encode(text) if text.isascii() else self.encoding.encode_ordinary(text)
        return ranks if self.ids is None else self.ids[ranks].tolist()

    def encode_ranks(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """The ranks of texts this :meth:`takes`, concatenated (uint32), and how many each has: the ASCII
        ones with :attr:`ascii_bpe` (on rayon's threads when :func:`encode_threads` allows more than one,
        but in a forked child), the others with tiktoken."""
        is_ascii = [text.isascii() for text in texts]
        parallel = encode_threads() > 1 and not _FORKED
        ranks, counts = self.ascii_bpe.encode_texts([t for t, a in zip(texts, is_ascii, strict=True) if a], parallel)
        if all(is_ascii):
            return ranks, counts.tolist()
        others = self._tiktoken_ranks([t for t, a in zip(texts, is_ascii, strict=True) if not a])
        return interleaved(is_ascii, ranks, counts.tolist(), others, np.uint32)

    def _tiktoken_ranks(self, texts: list[str]) -> list[list[int]]:
        """tiktoken's ranks of texts this :meth:`takes`, in :func:`encode_threads` threads (each encodes
        contiguous texts of about equal length in all) when they are long enough to be worth it."""
        encode = self.encoding.encode_ordinary
        threads = encode_threads()
        ends = list(itertools.accumulate(map(len, texts)))
        if threads == 1 or len(texts) < 2 or not ends or ends[-1] < PARALLEL_CHARS:
            return [encode(text) for text in texts]
        parts = min(len(texts), 4 * threads)  # several per thread, so that one slow part waits less
        cuts = [0] + [bisect.bisect_left(ends, ends[-1] * k // parts) + 1 for k in range(1, parts)] + [len(texts)]
        cuts = sorted(set(cuts))
        pool = _encode_pool(threads)  # tiktoken lets go of the GIL while it encodes
        encoded = pool.map(lambda a, b: [encode(text) for text in texts[a:b]], cuts, cuts[1:])
        return list(itertools.chain.from_iterable(encoded))


def interleaved(
    firsts: list[bool], first: np.ndarray, first_counts: list[int], others: list[list[int]], dtype
) -> tuple[np.ndarray, list[int]]:
    """Two encodings of one batch put back in its order: where ``firsts`` is true the next of ``first``
    (concatenated, ``first_counts`` long each), else the next of ``others``; (all concatenated, counts)."""
    firsts_split = iter(np.split(first, np.cumsum(first_counts)[:-1]) if first_counts else [])
    others_left = iter(others)
    parts = [next(firsts_split) if is_first else np.asarray(next(others_left), dtype) for is_first in firsts]
    return (np.concatenate(parts) if parts else np.empty(0, dtype)), [part.size for part in parts]


def _tokenizers_version() -> str:
    import tokenizers

    return getattr(tokenizers, "__version__", "?")


def _same_pieces(tokenizer: Tokenizer, text: str) -> bool:
    """Whether tiktoken's regex engine cuts ``text`` (without added tokens) into the pieces that the
    pre-tokenizer of ``tokenizer`` (a ByteLevel one) cuts it into. Checked with pieces, not with the
    tokenizer's ids: a piece cut otherwise seldom gives other ids, as few merges join what the two may cut
    apart. Here tiktoken's tokens are the 256 bytes and those pieces: it encodes a piece it cuts that is one
    of them as that one token, and any other piece as tokens that merging bytes reaches, which are bytes,
    pieces of two bytes, and longer pieces only where a piece holds a shorter one that leads to it."""
    import tiktoken

    pieces = [piece.translate(_LATIN1).encode("latin-1") for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
    ranks = {bytes([byte]): byte for byte in range(256)}
    for piece in pieces:
        ranks.setdefault(piece, len(ranks))
    encoding = tiktoken.Encoding("memlm-probe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    return encoding.decode_tokens_bytes(encoding.encode_ordinary(text)) == pieces


def _byte_level(component) -> bool:
    """Whether a pre-tokenizer or post-processor of the JSON is a ByteLevel one with no fields but its own."""
    return isinstance(component, dict) and component.keys() <= _BYTE_LEVEL_KEYS and component.get("type") == "ByteLevel"


def _ranks(vocab: dict, merges: list) -> tuple[dict[bytes, int], np.ndarray, list[str]] | None:
    """tiktoken's ranks (the 256 bytes, then merge i's result at 256 + i), the vocab's id of each rank and
    the merge results (as vocab strings); None unless every byte is in the vocab and the merge results are
    distinct, in the vocab, and of the byte alphabet. (A merge with an empty side passes here: the results
    are then checked to encode as themselves, which no result of such a merge does.)"""
    try:
        results = [first + second for first, second in (m.split(" ") if isinstance(m, str) else m for m in merges)]
    except (TypeError, ValueError):  # not a pair
        return None
    if not all(type(result) is str for result in results):
        return None
    try:  # one character of the byte alphabet per byte
        joined = "".join(results).translate(_LATIN1).encode("latin-1")
    except UnicodeEncodeError:  # a character outside the byte alphabet
        return None
    ends = itertools.accumulate(map(len, results), initial=0)
    ranks = {bytes([byte]): byte for byte in range(256)}
    ranks.update((joined[start:end], rank) for rank, (start, end) in enumerate(itertools.pairwise(ends), 256))
    if len(ranks) != 256 + len(results):  # two merges with the same result
        return None
    try:
        ids = np.array([vocab.get(token) for token in byte_alphabet() + results], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):  # a token not in the vocab (None)
        return None
    return (ranks, ids, results) if ids.min(initial=0) >= 0 else None


def _encode_as_themselves(tokenizer: Tokenizer, results: list[str], ids: list[int]) -> bool:
    """Whether the BPE model alone encodes each merge result as the one token with its id in ``ids``
    (results joined by spaces, split there: no character of the byte alphabet is white space)."""
    bare = Tokenizer(tokenizer.model)
    bare.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    texts = [" ".join(results[at : at + _CHECK_WORDS]) for at in range(0, len(results), _CHECK_WORDS)]
    encoded = bare.encode_batch(texts, add_special_tokens=False)
    return list(itertools.chain.from_iterable(e.ids for e in encoded)) == ids


#: Fast paths built in this process, by the SHA-256 of the tokenizer JSON (None: that tokenizer has none).
_FAST_PATHS: dict[str, FastPath | None] = {}


@dataclass
class TokenizerSpec:
    """A tokenizer with the exact JSON it was read from, which identifies it (by SHA-256)."""

    json: str
    name: str
    _tokenizer: Tokenizer | None = field(default=None, repr=False)
    # What the process knows of this JSON, none of it pickled or copied (see __getstate__): its fast path
    # (None: it has none) once _fast_resolved; characters tokenised with tokenizers before it is; the JSON
    # and its SHA-256 (the key of _FAST_PATHS) once computed.
    _fast: FastPath | None = field(default=None, init=False, repr=False, compare=False)
    _fast_resolved: bool = field(default=False, init=False, repr=False, compare=False)
    _slow_chars: int = field(default=0, init=False, repr=False, compare=False)
    #: (the JSON, its SHA-256, whether it is valid UTF-8: no lone surrogate).
    _digest: tuple[str, str, bool] | None = field(default=None, init=False, repr=False, compare=False)
    #: The bytes each id spells (:meth:`token_bytes`), once made.
    _token_bytes: list[bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        """The fields, but what the process knows of the JSON: a copy (pickled or not) finds its fast path
        again, or builds it, as a new spec does."""
        state = self.__dict__.copy()
        for name in ("_fast", "_fast_resolved", "_slow_chars", "_digest", "_token_bytes"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)  # a spec pickled by an earlier memlm has its _fast and _slow_chars: reset
        self._fast, self._fast_resolved, self._slow_chars, self._digest = None, False, 0, None
        self._token_bytes = None

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> TokenizerSpec:
        """Reads a ``tokenizers`` JSON file (the shipped GPT-2 tokenizer when ``path`` is None)."""
        path = Path(path) if path is not None else DEFAULT_TOKENIZER
        try:
            json_text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            shown = checks.shown_path(path)
            raise MemlmError(f"{shown}: not a tokenizers JSON file (invalid UTF-8 at byte offset {e.start})") from None
        spec = cls(json=json_text, name=path.name)
        try:
            spec.tokenizer  # noqa: B018 - parse now so a bad file fails here, with its name
        except Exception as e:  # the tokenizers library raises plain Exceptions
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise MemlmError(f"{checks.shown_path(path)}: not a tokenizers JSON file ({reason})") from None
        return spec

    @classmethod
    def from_blob(cls, blob: bytes, name: str) -> TokenizerSpec:
        """Inverse of :meth:`to_blob`: the form stored inside model files."""
        return cls(json=zlib.decompress(blob).decode("utf-8"), name=name)

    @classmethod
    def from_section(cls, blob: bytes, name: str, where: str) -> TokenizerSpec:
        """The tokenizer section of a model or shard file (``where`` names the file in errors), decompressed
        and parsed now: a :class:`ModelFormatError` unless it is zlib-compressed UTF-8 tokenizer JSON."""
        try:
            spec = cls.from_blob(blob, name)
            spec.tokenizer  # noqa: B018 - parse it now, so that a bad section fails here
        except Exception as e:  # zlib.error, UnicodeDecodeError, the tokenizers library's own errors
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelFormatError(f"{where}: the tokenizer section is not a valid tokenizer ({reason})") from None
        return spec

    def to_blob(self) -> bytes:
        """The zlib-compressed JSON, as stored in model files."""
        return zlib.compress(self.json.encode("utf-8"), 9)

    @property
    def sha256(self) -> str:
        """The SHA-256 of the JSON's UTF-8, which identifies the tokenizer (computed once)."""
        _, digest, valid = self._digested()
        if not valid:
            self.json.encode("utf-8")  # the UnicodeEncodeError of a lone surrogate, as ever
        return digest

    def _key(self) -> str:
        """The key of this JSON in _FAST_PATHS: its SHA-256 (a lone surrogate does not make this fail:
        parsing the JSON does)."""
        return self._digested()[1]

    def _digested(self) -> tuple[str, str, bool]:
        """:attr:`_digest`, computed once (again if ``json`` is replaced)."""
        digest = self._digest
        if digest is None or digest[0] is not self.json:
            json_text = self.json
            try:
                data, valid = json_text.encode("utf-8"), True
            except UnicodeEncodeError:
                data, valid = json_text.encode("utf-8", "surrogatepass"), False
            digest = self._digest = (json_text, hashlib.sha256(data).hexdigest(), valid)
        return digest

    @property
    def tokenizer(self) -> Tokenizer:
        """The parsed tokenizer (parsed on first use)."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer.from_str(self.json)
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def fast_path(self) -> FastPath | None:
        """This tokenizer's tiktoken fast path, built on first use (once per process and tokenizer JSON:
        a thread that wants it while another builds it waits); None when it has none. See :class:`FastPath`."""
        if not self._fast_resolved:
            key = self._key()
            with _BUILD_LOCK:
                if key in _FAST_PATHS:
                    fast = _FAST_PATHS[key]
                else:
                    fast = FastPath.build(self.json, self.tokenizer, self.id_dtype)
                    if len(_FAST_PATHS) >= 8:
                        _FAST_PATHS.clear()
                    _FAST_PATHS[key] = fast
                self._fast = fast
                self._fast_resolved = True
        return self._fast

    def _fast_path_for(self, chars: int) -> FastPath | None:
        """The fast path to encode ``chars`` more characters with: None (tokenizers) until it is built, or
        this spec has tokenised ``FAST_PATH_AFTER_CHARS`` characters counting these."""
        if not self._fast_resolved and self._key() not in _FAST_PATHS:
            with _COUNT_LOCK:
                self._slow_chars += chars
                slow_chars = self._slow_chars
            if slow_chars < FAST_PATH_AFTER_CHARS:
                return None
        return self.fast_path

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (tokenised in pieces when longer than ``LONG_BLOCK_CHARS``); a
        :class:`MemlmError` unless it is a str of valid Unicode."""
        if isinstance(text, str) and len(text) <= LONG_BLOCK_CHARS:
            fast = self._fast_path_for(len(text))
            if fast is not None and fast.takes(text):
                return fast.encode(text)
        try:
            if len(text) <= LONG_BLOCK_CHARS:
                return self.tokenizer.encode(text, add_special_tokens=False).ids
        except TypeError:  # what the tokenizers library raises for anything but a str of valid Unicode
            checks.text(text)  # says what is wrong with it
            raise
        return self.encode_stream([(0.0, checks.text(text))])[0].tolist()

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def token_bytes(self) -> list[bytes] | None:
        """The bytes each id spells, for a byte-level BPE tokenizer like GPT-2's (one with a fast path; an
        added token spells its content); None for other tokenizers. Made once per spec."""
        if self._token_bytes is None and self.fast_path is not None:
            table = [b""] * self.vocab_size
            added = {token.content for token in self.tokenizer.get_added_tokens_decoder().values()}
            for token, id_ in self.tokenizer.get_vocab(with_added_tokens=True).items():
                table[id_] = token.encode("utf-8") if token in added else token.translate(_LATIN1).encode("latin-1")
            self._token_bytes = table
        return self._token_bytes

    def token_byte_lengths(self) -> np.ndarray | None:
        """How many bytes each id spells (see :meth:`token_bytes`), as int64; None for other tokenizers."""
        table = self.token_bytes()
        return None if table is None else np.fromiter(map(len, table), np.int64, len(table))

    @property
    def id_dtype(self) -> type:
        """The narrowest dtype that holds every token id: uint16 for GPT-2's 50,257 ids."""
        return np.uint16 if self.vocab_size <= 1 << 16 else np.uint32

    def encode_stream(self, blocks: Iterable[tuple[float, str]], progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Encodes (fraction read, block) pairs as they stream in, in parallel batches of bounded size
        (``ENCODE_CHUNK`` texts, ``ENCODE_CHARS`` characters; a block longer than ``LONG_BLOCK_CHARS`` in
        pieces), into one growing array of the narrowest id dtype; ``progress(fraction, tokens)`` after
        each batch."""
        buffer = np.empty(1 << 20, dtype=self.id_dtype)
        used = 0
        lengths: list[int] = []
        batch: list[str] = []
        starts: list[bool] = []  # whether each text of the batch starts a block (or goes on with one)
        block = 0  # ids of the block being encoded so far (its pieces may span batches)

        def flush(fraction: float) -> None:
            nonlocal buffer, used, block
            ids, counts = self._encode_batch(batch)
            if used + ids.size > buffer.size:
                buffer = np.resize(buffer, max(2 * buffer.size, used + ids.size))
            buffer[used : used + ids.size] = ids
            used += ids.size
            for count, starts_block in zip(counts, starts, strict=True):
                if starts_block and block:
                    lengths.append(block)
                    block = 0
                block += count
            batch.clear()
            starts.clear()
            if progress is not None:
                progress(fraction, used)

        fraction, chars = 0.0, 0
        for fraction, text in blocks:
            for number, piece in enumerate(split_long(text) if len(text) > LONG_BLOCK_CHARS else [text]):
                batch.append(piece)
                starts.append(number == 0)
                chars += len(piece)
                if len(batch) == ENCODE_CHUNK or chars >= ENCODE_CHARS:
                    flush(fraction)
                    chars = 0
        flush(1.0)
        if block:
            lengths.append(block)
        return buffer[:used].copy(), np.asarray(lengths, dtype=np.uint64)

    def _encode_batch(self, texts: list) -> tuple[np.ndarray, list[int]]:
        """The ids of ``texts`` concatenated (narrowest dtype), and how many each has: with the fast path
        those it takes, with tokenizers the others (a :class:`MemlmError` for the first that is not a str
        of valid Unicode)."""
        fast = self._fast_path_for(sum(map(len, texts)))
        takes = [fast is not None and fast.takes(text) for text in texts]
        quick = [text for text, took in zip(texts, takes, strict=True) if took]
        quick_ids, quick_counts = np.empty(0, self.id_dtype), []
        if fast is not None and quick:
            ranks, quick_counts = fast.encode_ranks(quick)
            quick_ids = (ranks if fast.ids is None else fast.ids[ranks]).astype(self.id_dtype, copy=False)
            if len(quick) == len(texts):
                return quick_ids, quick_counts
        slow = self._encode_slow([text for text, took in zip(texts, takes, strict=True) if not took])
        return interleaved(takes, quick_ids, quick_counts, slow, self.id_dtype)

    def _encode_slow(self, texts: list) -> list[list[int]]:
        """The ids of each text with tokenizers (in parallel); a :class:`MemlmError` for the first that is
        not a str of valid Unicode."""
        if not texts:
            return []
        try:
            encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        except TypeError:  # what the tokenizers library raises for anything but a str of valid Unicode
            for text in texts:
                checks.text(text, "a block of the text")  # says what is wrong with the first bad one
            raise
        return [enc.ids for enc in encodings]

    def encode_blocks(self, blocks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Encodes blocks in parallel: (all token ids concatenated as uint32, block lengths as uint64)."""
        tokens, lengths = self.encode_stream((0.0, block) for block in blocks)
        return tokens.astype(np.uint32), lengths
