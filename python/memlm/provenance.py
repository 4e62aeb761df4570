"""Where each training block came from, so that a training position can be cited as a passage of its source.

Recorded at training time (``memlm train --provenance``) by :class:`OriginsRecorder` as the corpus is read,
stored in the model file as opaque bytes next to the core's provenance index (``rust/core/src/provenance.rs``),
read back by :class:`Origins`.

Rules:
- A block's text is its source lines, each stripped, joined by single spaces (``corpus.py``). Per block the
  store keeps its source, the byte offset in the source where its first stripped line starts, its text's
  length in UTF-8 bytes, and per *join* (a space standing for the bytes between two stripped lines) its byte
  position in the block's text and those bytes (the line break and the white space stripped around it). So
  the source's bytes of any span of a block are its text's bytes with each join's space replaced by the
  join's bytes: exact for plain-text sources (gzip or not, offsets in the decompressed bytes) of valid UTF-8
  (with ``errors="replace"`` a replaced byte shifts what follows). A JSONL record's blocks are named
  ``path:line`` and their offsets count in the record's text (JSON escapes decoded).
- The tokens of a block spell its text byte for byte (a byte-level BPE tokenizer), which training checks: a
  training position is then a byte span of its block.
- Serialised as a magic line, then zlib-compressed: a JSON line (sources, counts) and little-endian arrays
  (per block: source, offset, byte length, first join; per join: position, gap start), then the gaps' bytes.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np

from memlm.errors import ModelFormatError

#: The first bytes of a serialised store: its own format version, so that a change is refused, not misread.
MAGIC = b"MEMLMPROV1\n"
#: The arrays of a serialised store, in order: name and little-endian dtype.
_ARRAYS = (
    ("block_source", "<u4"),
    ("block_offset", "<u8"),
    ("block_bytes", "<u8"),
    ("block_first_join", "<u8"),
    ("join_position", "<u4"),
    ("gap_start", "<u8"),
)


class OriginsRecorder:
    """Collects the origin of every block as the corpus is read, in the order the blocks are tokenised."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self.columns: dict[str, list[int]] = {name: [] for name, _ in _ARRAYS}
        self.gaps = bytearray()

    def add_block(self, source: str, lines: list[tuple[str, int]]) -> None:
        """Records a block: its source (the path as given; bytes that are not UTF-8 in it shown as ``\\xff``)
        and its lines as read (line break included, the byte offset where each starts), from its first to its
        last line with text."""
        source = source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        columns = self.columns
        index = self._source_index.setdefault(source, len(self.sources))
        if index == len(self.sources):
            self.sources.append(source)
        columns["block_source"].append(index)
        columns["block_first_join"].append(len(columns["join_position"]))
        position = 0  # bytes of the block's text so far
        gap: bytearray | None = None  # the source's bytes since the last stripped line ended
        for line, offset in lines:
            stripped = line.strip()
            if not stripped:
                if gap is not None:
                    gap += line.encode("utf-8")
                continue
            lead = line[: len(line) - len(line.lstrip())].encode("utf-8")
            if gap is None:
                columns["block_offset"].append(offset + len(lead))
            else:
                columns["join_position"].append(position)
                columns["gap_start"].append(len(self.gaps))
                self.gaps += gap + lead
                position += 1
            position += len(stripped.encode("utf-8"))
            gap = bytearray(line[len(line.rstrip()) :].encode("utf-8"))
        columns["block_bytes"].append(position)

    def to_bytes(self) -> bytes:
        """The serialised store."""
        arrays = {name: np.asarray(self.columns[name], dtype) for name, dtype in _ARRAYS}
        return _serialised(self.sources, arrays, bytes(self.gaps))


def _serialised(sources: list[str], arrays: dict[str, np.ndarray], gaps: bytes) -> bytes:
    """A store's bytes (see the module doc)."""
    counts = {name: int(arrays[name].size) for name, _ in _ARRAYS}
    header = json.dumps({"sources": sources, "counts": counts, "gap_bytes": len(gaps)})
    body = b"".join(np.asarray(arrays[name], dtype).tobytes() for name, dtype in _ARRAYS)
    return MAGIC + zlib.compress(header.encode("utf-8") + b"\n" + body + gaps, 6)


def concatenated(parts: list[Origins]) -> bytes:
    """The store of several corpora's blocks one after the other (a merged model's), its sources each once."""
    index: dict[str, int] = {}
    columns: dict[str, list[np.ndarray]] = {name: [] for name, _ in _ARRAYS}
    joins = gaps = 0
    for part in parts:
        remap = np.array([index.setdefault(s, len(index)) for s in part.sources], np.int64)
        columns["block_source"].append(remap[part.block_source])
        columns["block_offset"].append(part.block_offset)
        columns["block_bytes"].append(part.block_bytes)
        columns["block_first_join"].append(part.block_first_join + joins)
        columns["join_position"].append(part.join_position)
        columns["gap_start"].append(part.gap_start + gaps)
        joins += part.join_position.size
        gaps += len(part.gaps)
    arrays = {name: np.concatenate(values) if values else np.zeros(0) for name, values in columns.items()}
    return _serialised(list(index), arrays, b"".join(part.gaps for part in parts))


@dataclass(frozen=True)
class SourceSpan:
    """A span of a block in its source: the source's name, the byte offset where the span starts and its
    bytes, with where given block-text byte positions fall in those bytes."""

    source: str
    offset: int
    data: bytes
    marks: tuple[int, ...]


class Origins:
    """A read store (see the module doc): which source, at which offset, each span of each block comes from.
    Arrays: per block ``block_source``, ``block_offset``, ``block_bytes``, ``block_first_join``; per join
    ``join_position``, ``gap_start``; ``gaps`` the joins' bytes."""

    block_source: np.ndarray
    block_offset: np.ndarray
    block_bytes: np.ndarray
    block_first_join: np.ndarray
    join_position: np.ndarray
    gap_start: np.ndarray

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Origins:
        """The store serialised in ``data``; a :class:`ModelFormatError` naming ``where`` when it is damaged."""
        try:
            return cls(data, where)
        except (ValueError, KeyError, TypeError, IndexError, zlib.error) as e:
            raise ModelFormatError(f"{where}: damaged provenance origins ({e})") from None

    def __init__(self, data: bytes, where: str = "the model") -> None:
        if not data.startswith(MAGIC):
            raise ValueError(f"{where}: the provenance origins are not in a format this memlm reads")
        body = zlib.decompress(data[len(MAGIC) :])
        header_end = body.index(b"\n")
        header = json.loads(body[:header_end])
        self.sources: list[str] = header["sources"]
        at = header_end + 1
        for name, dtype in _ARRAYS:
            count = header["counts"][name]
            array = np.frombuffer(body, dtype, count, at)
            setattr(self, name, array)
            at += array.nbytes
        self.gaps = body[at : at + header["gap_bytes"]]
        if at + header["gap_bytes"] != len(body) or not self._consistent():
            raise ValueError(f"{where}: the provenance origins are inconsistent")

    def _consistent(self) -> bool:
        """Whether the arrays agree: a block per entry, sources, joins and gaps in range and in order."""
        blocks = self.block_source.size
        joins = self.join_position.size
        return (
            self.block_offset.size == self.block_bytes.size == self.block_first_join.size == blocks
            and self.gap_start.size == joins
            and (blocks == 0 or int(self.block_source.max()) < len(self.sources))
            and bool(np.all(np.diff(self.block_first_join.astype(np.int64)) >= 0))
            and (blocks == 0 or int(self.block_first_join[-1]) <= joins)
            and bool(np.all(np.diff(self.gap_start.astype(np.int64)) >= 0))
            and (joins == 0 or int(self.gap_start[-1]) <= len(self.gaps))
            and all(isinstance(source, str) for source in self.sources)
        )

    def check_joins(self) -> None:
        """Checks that each block's joins lie inside its text, in order (a pass over all joins: what
        ``Model.verify`` adds); a ValueError otherwise."""
        ends = np.append(self.block_first_join[1:], self.join_position.size).astype(np.int64)
        counts = ends - self.block_first_join.astype(np.int64)
        block_of_join = np.repeat(np.arange(self.n_blocks), counts)
        positions = self.join_position.astype(np.int64)
        inside = positions < self.block_bytes.astype(np.int64)[block_of_join]
        ascending = np.diff(positions) > 0
        ascending |= np.diff(block_of_join) != 0  # a new block starts over
        if not (inside.all() and ascending.all()):
            raise ValueError("the provenance origins' line joins do not fit their blocks")

    @property
    def n_blocks(self) -> int:
        return int(self.block_source.size)

    def span(
        self, block: int, window: bytes, window_start: int, start: int, end: int, marks: tuple[int, ...] = ()
    ) -> SourceSpan:
        """The source span of bytes ``start:end`` of block ``block``'s text, given the ``window`` of that text
        that starts at its byte ``window_start`` and holds them; each of ``marks`` (block-text byte
        positions in start..end) mapped to a position in the span's bytes."""
        first_join = int(self.block_first_join[block])
        last_join = int(self.block_first_join[block + 1]) if block + 1 < self.n_blocks else self.join_position.size
        positions = self.join_position[first_join:last_join]
        gap_starts = self.gap_start[first_join:last_join].astype(np.int64)
        gap_ends = np.append(gap_starts[1:], self._next_gap(last_join))
        # Bytes each join adds to the source beyond its space, summed over the joins before each join.
        added = np.concatenate(([0], np.cumsum(gap_ends - gap_starts - 1)))

        def source_position(byte: int) -> int:
            """Where block-text byte ``byte`` falls in the block's source bytes (from its first line)."""
            return byte + int(added[np.searchsorted(positions, byte, side="left")])

        data = bytearray()
        cursor = start
        inside = slice(np.searchsorted(positions, start, side="left"), np.searchsorted(positions, end, side="left"))
        for position, gap_start, gap_end in zip(
            positions[inside].tolist(), gap_starts[inside].tolist(), gap_ends[inside].tolist(), strict=True
        ):
            data += window[cursor - window_start : position - window_start] + self.gaps[gap_start:gap_end]
            cursor = position + 1
        data += window[cursor - window_start : end - window_start]
        first = source_position(start)
        return SourceSpan(
            source=self.sources[int(self.block_source[block])],
            offset=int(self.block_offset[block]) + first,
            data=bytes(data),
            marks=tuple(source_position(mark) - first for mark in marks),
        )

    def _next_gap(self, join: int) -> int:
        return int(self.gap_start[join]) if join < self.gap_start.size else len(self.gaps)
