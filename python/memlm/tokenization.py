"""Tokenisation with Hugging Face ``tokenizers``: the tokenizer's identity, and batch encoding of blocks."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from memlm import checks
from memlm.errors import MemlmError, ModelFormatError

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


@dataclass
class TokenizerSpec:
    """A tokenizer with the exact JSON it was read from, which identifies it (by SHA-256)."""

    json: str
    name: str
    _tokenizer: Tokenizer | None = field(default=None, repr=False)

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
        return hashlib.sha256(self.json.encode("utf-8")).hexdigest()

    @property
    def tokenizer(self) -> Tokenizer:
        """The parsed tokenizer (parsed on first use)."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer.from_str(self.json)
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (tokenised in pieces when longer than ``LONG_BLOCK_CHARS``); a
        :class:`MemlmError` unless it is a str of valid Unicode."""
        try:
            if len(text) <= LONG_BLOCK_CHARS:
                return self.tokenizer.encode(text, add_special_tokens=False).ids
        except TypeError:  # what the tokenizers library raises for anything but a str of valid Unicode
            checks.text(text)  # says what is wrong with it
            raise
        return self.encode_stream([(0.0, checks.text(text))])[0].tolist()

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

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
            try:
                encodings = self.tokenizer.encode_batch(batch, add_special_tokens=False)
            except TypeError:  # what the tokenizers library raises for anything but a str of valid Unicode
                for text in batch:
                    checks.text(text, "a block of the text")  # says what is wrong with the first bad one
                raise
            for enc, starts_block in zip(encodings, starts, strict=True):
                if starts_block and block:
                    lengths.append(block)
                    block = 0
                ids = enc.ids
                if not ids:
                    continue
                if used + len(ids) > buffer.size:
                    buffer = np.resize(buffer, max(2 * buffer.size, used + len(ids)))
                buffer[used : used + len(ids)] = ids
                used += len(ids)
                block += len(ids)
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

    def encode_blocks(self, blocks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Encodes blocks in parallel: (all token ids concatenated as uint32, block lengths as uint64)."""
        tokens, lengths = self.encode_stream((0.0, block) for block in blocks)
        return tokens.astype(np.uint32), lengths
