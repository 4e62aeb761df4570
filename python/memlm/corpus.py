"""Corpus ingestion: files, directories, gzip, JSONL and stdin, split into blocks at blank lines.

A block is the unit of training and evaluation: its line breaks become spaces, it is tokenised on its own,
and the context of its first tokens is padded rather than taken from the block before."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

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


def _check_errors(errors: str) -> None:
    """What to do with bad UTF-8: ``strict`` (an error) or ``replace`` (by U+FFFD)."""
    if errors not in ("strict", "replace"):
        raise CorpusError(f"errors must be 'strict' or 'replace', got {errors!r}")


def _expand(sources: Iterable[str | Path]) -> Iterator[str | Path]:
    for source in sources:
        if str(source) == STDIN:
            yield STDIN
            continue
        if str(source) == "":  # no file (Path("") would be the current folder)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "")
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise CorpusError(f"{checks.shown_path(path)}: the directory holds no files")
            yield from files
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


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


@contextmanager
def _opened(source: str | Path) -> Iterator[tuple[BinaryIO, _Input]]:
    """(the decompressed bytes, the raw input) of a file, FIFO or stdin: gzip is recognised by its first
    bytes (a ``.gz`` name whose content is not gzip is an error), read without seeking."""
    name = source_name(source)
    raw = sys.stdin.buffer if source == STDIN else open(source, "rb", buffering=0)  # noqa: SIM115
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
        if source != STDIN:
            raw.close()


def _read_bytes(source: str | Path) -> bytes:
    """The whole (decompressed) content of a source."""
    with _opened(source) as (stream, _):
        try:
            return stream.read()
        except _GZIP_ERRORS as e:
            raise _not_gzip(source_name(source), str(e)) from None


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
    sources: Iterable[str | Path], text_field: str = "text", errors: str = "strict"
) -> Iterator[tuple[str, str]]:
    """Yields (source name, text) for every document: a whole text file, or one JSONL record."""
    _check_errors(errors)
    checks.name(text_field, "text_field")
    for source in _expand(sources):
        name = source_name(source)
        text = _decode(_read_bytes(source), name, errors)
        if not _is_jsonl(source):
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
    sources: Iterable[str | Path], text_field: str = "text", errors: str = "strict", origins=None
) -> Iterator[tuple[float, str]]:
    """Streams (fraction of the input bytes read, block) for every block of every source, reading plain
    text (and gzip) line by line so that memory does not grow with the corpus. ``origins`` (an
    :class:`memlm.provenance.OriginsRecorder`) hears where each block came from."""
    sources = list(sources)
    if not sources:
        raise CorpusError("no corpus given")
    _check_errors(errors)
    checks.name(text_field, "text_field")
    files = list(_expand(sources))
    # Sizes of the regular files; the input of a pipe or FIFO has none until it is read (progress then
    # counts it as nothing and stops at 100%).
    sizes = [_size(f) for f in files]
    total = sum(sizes) or 1
    done = 0
    for source, size in zip(files, sizes, strict=True):
        if _is_jsonl(source):
            for record, text in iter_documents([source], text_field=text_field, errors=errors):
                for block, lines in _located_blocks(_lines_of(text)):
                    if origins is not None:
                        origins.add_block(record, lines)
                    yield min(done / total, 1.0), block
        else:
            name = source_name(source)
            with _opened(source) as (stream, counted):
                for block, lines in _located_blocks(_decoded_lines(stream, name, errors)):
                    if origins is not None:
                        origins.add_block(str(source) if source != STDIN else name, lines)
                    yield min((done + counted.count) / total, 1.0), block
        done += size


def _size(source: str | Path) -> int:
    if source == STDIN:
        return 0
    status = Path(source).stat()
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def _lines_of(text: str) -> Iterator[tuple[str, int]]:
    """The lines of a text (line feeds kept) with the byte offset where each starts."""
    offset = 0
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        line += "\n" if number < len(lines) else ""
        yield line, offset
        offset += len(line.encode("utf-8"))


def _decoded_lines(stream, name: str, errors: str) -> Iterator[tuple[str, int]]:
    """The lines of a binary stream, decoded, with the byte offset where each starts."""
    offset = 0
    try:
        for raw_line in stream:
            try:
                yield raw_line.decode("utf-8", errors=errors), offset
            except UnicodeDecodeError as e:
                raise InvalidUtf8Error(name, offset + e.start, ERRORS_KEYWORD) from None
            offset += len(raw_line)
    except _GZIP_ERRORS as e:
        raise _not_gzip(name, str(e)) from None
