"""Corpus ingestion: files, directories, gzip, JSONL and stdin, split into blocks at blank lines.

A block is the unit of training and evaluation: its line breaks become spaces, it is tokenised on its own,
and the context of its first tokens is padded rather than taken from the block before. A blank line ends
a block, so a file cut at the start of a blank line gives, piece by piece, the blocks it gives whole: the
:class:`Piece` a cluster build's task reads (:func:`pieces`)."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO, NamedTuple

from memlm import checks
from memlm.errors import CorpusError, InvalidUtf8Error, MemlmError

STDIN = "-"
#: What messages call standard input.
STDIN_NAME = "<stdin>"
#: The first bytes of a gzip stream: such input is decompressed, whatever its name.
GZIP_MAGIC = b"\x1f\x8b"
#: What a corrupt or truncated gzip stream raises while it is read.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
#: The keyword argument that substitutes bad UTF-8 (named in the error it prevents).
ERRORS_KEYWORD = "errors='replace'"


def split_blocks(text: str) -> list[str]:
    """Splits text at blank lines (only spaces, tabs, CR, FF, VT between two line feeds); inside a block,
    lines are stripped and joined by single spaces. The rule of a corpus read line by line, applied to a
    whole text."""
    return list(_plain_text_blocks(text.split("\n")))


def source_name(source: str | Path) -> str:
    """A source as messages name it (on one line, as the core shows paths)."""
    return STDIN_NAME if source == STDIN else checks.shown_path(source)


def _not_gzip(name: str, reason: str) -> CorpusError:
    return CorpusError(f"{name}: not a valid gzip file ({reason})")


def check_reading(text_field: str, errors: str) -> None:
    """How a corpus is read: ``errors``, what to do with bad UTF-8 (``strict``: an error, ``replace``: by
    U+FFFD), and ``text_field``, the field of JSONL records that holds the text (a str)."""
    if errors not in ("strict", "replace"):
        raise CorpusError(f"errors must be 'strict' or 'replace', got {errors!r}")
    checks.name(text_field, "text_field")


class Piece(NamedTuple):
    """A part of the corpus read on its own: a whole source (a file, or stdin), or a byte range of a plain-text
    file that starts at the beginning of a blank line, so that its blocks are those the whole file has there
    (see :func:`pieces`). ``path`` is where it is opened; ``label`` names it in messages and provenance (the
    source as given, or as found in a folder), which a task on another machine keeps while it opens ``path``;
    ``start`` and ``end`` are byte offsets (``end`` None: to the end)."""

    path: str
    label: str
    start: int = 0
    end: int | None = None

    @classmethod
    def whole(cls, source: str | Path) -> Piece:
        return cls(os.fspath(source), os.fspath(source))


def _expand(sources: Iterable[str | Path | Piece]) -> Iterator[Piece]:
    """The pieces of the sources: folders by their files (recursively, sorted), files and stdin whole, pieces
    as they are."""
    for source in sources:
        if isinstance(source, Piece):
            yield source
            continue
        if str(source) == STDIN:
            yield Piece.whole(STDIN)
            continue
        if str(source) == "":  # no file (Path("") would be the current folder)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "")
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise CorpusError(f"{checks.shown_path(path)}: the directory holds no files")
            yield from map(Piece.whole, files)
        elif path.exists():
            yield Piece.whole(path)
        else:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


#: A blank line after a line break, the line break of its end included: where a file may be cut into pieces.
_BLANK_LINE = re.compile(rb"\n[ \t\r\f\v]*\n")
#: How much of a file is searched at a time for a blank line to cut it at.
_SEARCH_BYTES = 1 << 16


def pieces(sources: Iterable[str | Path], piece_bytes: int) -> list[Piece]:
    """The sources as pieces that tasks can read on their own, in the order training reads them (a cluster
    build tokenises each in a task): folders by their files, each piece's ``path`` absolute and its ``label``
    the source as training names it. A plain-text file (not gzip, not JSONL) of more than ``piece_bytes``
    bytes is cut at the starts of blank lines into pieces of at least that size (one piece when it has no
    blank line there). A missing file raises :class:`FileNotFoundError`; stdin is refused (a task elsewhere
    cannot read it)."""
    result = []
    for piece in _expand(sources):
        if piece.path == STDIN:
            raise CorpusError("standard input (-) cannot be read by a cluster's workers: give files")
        path = os.path.abspath(piece.path)
        cuts = [] if _is_jsonl(piece.label) or piece.label.endswith(".gz") else _cuts(path, piece_bytes)
        bounds = [0, *cuts, None]
        result.extend(Piece(path, piece.label, start, end) for start, end in pairwise(bounds))
    return result


def _cuts(path: str, piece_bytes: int) -> list[int]:
    """Offsets of a plain-text file at which pieces of at least ``piece_bytes`` bytes can start: each the start
    of a blank line (none for gzip content, or a file no larger than one piece)."""
    size = _size(Piece.whole(path))
    cuts: list[int] = []
    if size <= piece_bytes:  # a FIFO too (size 0), which is not opened
        return cuts
    with open(path, "rb") as file:
        if file.read(len(GZIP_MAGIC)) == GZIP_MAGIC:
            return cuts
        target = piece_bytes
        while target < size:
            file.seek(target - 1)  # from the line break before the target, should a blank line start there
            window = b""
            while (found := _BLANK_LINE.search(window)) is None:
                chunk = file.read(_SEARCH_BYTES)
                if not chunk:
                    return cuts
                window = window[-_SEARCH_BYTES:] + chunk
            cut = file.tell() - len(window) + found.start() + 1
            cuts.append(cut)
            target = cut + piece_bytes
    return cuts


class _Input(io.RawIOBase):
    """A binary input read once, from its start, counting the bytes read (for progress). The first bytes,
    read to tell gzip from text, are given again before the rest: pipes, FIFOs and stdin need no seeking."""

    def __init__(self, raw, head: bytes):
        self._raw = raw
        self._head = head
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            n = self._raw.readinto(buffer) or 0
        self.count += n
        return n


def _read_head(raw, n: int) -> bytes:
    """The first ``n`` bytes of a stream (fewer at its end); a pipe may give them in several reads."""
    head = b""
    while len(head) < n:
        chunk = raw.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


class _ByteRange(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file (``end`` None: to its end), read without seeking back."""

    def __init__(self, raw, start: int, end: int | None):
        self._raw = raw
        if start:
            raw.seek(start)
        self._left = None if end is None else end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        if self._left is not None:
            view = view[: self._left]
        n = self._raw.readinto(view) or 0
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


@contextmanager
def _opened(piece: Piece) -> Iterator[tuple[BinaryIO, _Input]]:
    """(the decompressed bytes, the raw input) of a piece of a file, FIFO or stdin: gzip is recognised by its
    first bytes (a ``.gz`` name whose content is not gzip is an error), read without seeking back."""
    name = source_name(piece.label)
    if piece.path == STDIN:
        raw = sys.stdin.buffer
    else:
        raw = open(piece.path, "rb", buffering=0)  # noqa: SIM115
        if piece.start or piece.end is not None:
            raw = _ByteRange(raw, piece.start, piece.end)
    try:
        head = _read_head(raw, len(GZIP_MAGIC))
        counted = _Input(raw, head)
        stream = io.BufferedReader(counted, buffer_size=1 << 16)
        if head == GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        elif head and name.endswith(".gz"):
            raise _not_gzip(name, "it does not start with the gzip magic bytes")
        yield stream, counted
    finally:
        if piece.path != STDIN:
            raw.close()


def _read_bytes(piece: Piece) -> bytes:
    """The whole (decompressed) content of a piece."""
    with _opened(piece) as (stream, _):
        try:
            return stream.read()
        except _GZIP_ERRORS as e:
            raise _not_gzip(source_name(piece.label), str(e)) from None


def no_text(sources: Iterable[str | Path]) -> CorpusError:
    """The error for a corpus that yields no tokens."""
    return CorpusError("the corpus holds no text: " + ", ".join(map(str, sources)))


def _decode(data: bytes, name: str, errors: str) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise InvalidUtf8Error(name, e.start, ERRORS_KEYWORD) from None


def _is_jsonl(source: str | Path) -> bool:
    name = str(source)
    return name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"))


def iter_documents(
    sources: Iterable[str | Path | Piece], text_field: str = "text", errors: str = "strict"
) -> Iterator[tuple[str, str]]:
    """Yields (source name, text) for every document: a whole text file, or one JSONL record."""
    check_reading(text_field, errors)
    for piece in _expand(sources):
        name = source_name(piece.label)
        text = _decode(_read_bytes(piece), name, errors)
        if not _is_jsonl(piece.label):
            yield name, text
            continue
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{name}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict) or text_field not in record:
                raise CorpusError(f"{name}:{number}: no {text_field!r} field")
            value = record[text_field]
            if not isinstance(value, str):
                raise CorpusError(f"{name}:{number}: the {text_field!r} field is not a string")
            try:
                checks.text(value, f"the {text_field!r} field")  # a JSON escape such as \\ud800 is a lone surrogate
            except MemlmError as e:
                raise CorpusError(f"{name}:{number}: {e}") from None
            yield f"{name}:{number}", value


def read_blocks(sources: Iterable[str | Path], text_field: str = "text", errors: str = "strict") -> list[str]:
    """All blocks of all sources, in order; an error when there are none."""
    sources = list(sources)
    blocks = [block for _, block in iter_blocks(sources, text_field=text_field, errors=errors)]
    if not blocks:
        raise no_text(sources)
    return blocks


def read_documents(sources: Iterable[str | Path], text_field: str = "text", errors: str = "strict") -> list[list[str]]:
    """The blocks of every document of the sources (a whole text file, or one JSONL record; see
    :func:`iter_documents`), in order: the blocks :func:`read_blocks` gives, grouped by document. An error
    when there are none."""
    sources = list(sources)
    if not sources:
        raise CorpusError("no corpus given")
    documents = [split_blocks(text) for _, text in iter_documents(sources, text_field=text_field, errors=errors)]
    if not any(documents):
        raise no_text(sources)
    return documents


def _is_blank(line: str) -> bool:
    return not line.strip(" \t\r\f\v\n")


def _plain_text_blocks(lines: Iterable[str]) -> Iterator[str]:
    """The blocks of a text given line by line (each line with or without its line feed)."""
    return (block for block, _ in _located_blocks((line, 0) for line in lines))


def _located_blocks(lines: Iterable[tuple[str, int]]) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """(block, its lines from its first to its last with text, each with its byte offset) of a text given as
    (line, byte offset) pairs: a blank line ends a block; other whitespace (a no-break space, U+2028) is
    stripped from the lines but ends nothing."""
    pending: list[str] = []
    located: list[tuple[str, int]] = []
    for line, offset in lines:
        if _is_blank(line):
            if pending:
                yield " ".join(pending), located
                pending, located = [], []
            continue
        stripped = line.strip()
        if stripped:
            pending.append(stripped)
            located.append((line, offset))
        elif pending:
            located.append((line, offset))
    if pending:
        yield " ".join(pending), located


def iter_blocks(
    sources: Iterable[str | Path | Piece], text_field: str = "text", errors: str = "strict", origins=None
) -> Iterator[tuple[float, str]]:
    """Streams (fraction of the input bytes read, block) for every block of every source (or :class:`Piece`),
    reading plain text (and gzip) line by line so that memory does not grow with the corpus. ``origins`` (an
    :class:`memlm.provenance.OriginsRecorder`) hears where each block came from."""
    sources = list(sources)
    if not sources:
        raise CorpusError("no corpus given")
    check_reading(text_field, errors)
    files = list(_expand(sources))
    # Sizes of the regular files; the input of a pipe or FIFO has none until it is read (progress then
    # counts it as nothing and stops at 100%).
    sizes = [_size(f) for f in files]
    total = sum(sizes) or 1
    done = 0
    for piece, size in zip(files, sizes, strict=True):
        if _is_jsonl(piece.label):
            for record, text in iter_documents([piece], text_field=text_field, errors=errors):
                for block, lines in _located_blocks(_lines_of(text)):
                    if origins is not None:
                        origins.add_block(record, lines)
                    yield min(done / total, 1.0), block
        else:
            name = source_name(piece.label)
            with _opened(piece) as (stream, counted):
                for block, lines in _located_blocks(_decoded_lines(stream, name, errors, piece.start)):
                    if origins is not None:
                        origins.add_block(name if piece.label == STDIN else piece.label, lines)
                    yield min((done + counted.count) / total, 1.0), block
        done += size


def _size(piece: Piece) -> int:
    if piece.path == STDIN:
        return 0
    status = Path(piece.path).stat()
    whole = status.st_size if stat.S_ISREG(status.st_mode) else 0
    return (whole if piece.end is None else piece.end) - piece.start


def _lines_of(text: str) -> Iterator[tuple[str, int]]:
    """The lines of a text (line feeds kept) with the byte offset where each starts."""
    offset = 0
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        line += "\n" if number < len(lines) else ""
        yield line, offset
        offset += len(line.encode("utf-8"))


def _decoded_lines(stream, name: str, errors: str, offset: int = 0) -> Iterator[tuple[str, int]]:
    """The lines of a binary stream, decoded, with the byte offset where each starts (the stream starting at
    ``offset`` of its source)."""
    try:
        for raw_line in stream:
            try:
                yield raw_line.decode("utf-8", errors=errors), offset
            except UnicodeDecodeError as e:
                raise InvalidUtf8Error(name, offset + e.start, ERRORS_KEYWORD) from None
            offset += len(raw_line)
    except _GZIP_ERRORS as e:
        raise _not_gzip(name, str(e)) from None
