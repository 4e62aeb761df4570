"""Generation's Python side. The core extends the context token by token (greedy, or sampled with
Hugging Face's ``temperature`` / ``top_k`` / ``top_p`` and its own seeded generator); here the new ids are
pulled in chunks, turned into text incrementally and cut at the first stop string.

Decoding never starts over: :class:`TextDecoder` decodes only a window of recent ids, and stop strings are
looked for only in the new text (plus the end of the old one that a stop string could straddle), so each
token costs the same however long the generation runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from memlm import checks
from memlm.errors import MemlmError

#: (first, largest) size of the chunks of ids a stream asks the core for: 1, then doubling up to 64, so
#: the first text comes at once and the cost of each call into the core is shared by many tokens after that.
STREAM_CHUNKS = (1, 64)
#: The same for :meth:`memlm.Model.generate`, which yields nothing until the end.
GENERATE_CHUNKS = (64, 4096)
#: How long one call into the core may take at most, about: a chunk that took longer is followed by a
#: smaller one. Python handles Ctrl-C (KeyboardInterrupt) between the calls (the core runs without the
#: GIL), so a generation stops within about this time however slow its classifier is.
CHUNK_SECONDS = 0.05
#: What an incomplete UTF-8 sequence decodes to at the end of a text.
REPLACEMENT = "\ufffd"
#: Ids before the decoding window are dropped once this many piled up.
_KEEP_IDS = 4096


def next_chunk(size: int, seconds: float, largest: int) -> int:
    """The size of the chunk after one of ``size`` ids that took ``seconds``: twice as large while calls
    are fast, up to ``largest``; as many ids as take :data:`CHUNK_SECONDS` at that pace when they are not
    (at least 1)."""
    if seconds <= CHUNK_SECONDS / 2:
        return min(2 * size, largest)
    return max(1, min(int(size * CHUNK_SECONDS / seconds), largest))


class TextDecoder:
    """Turns a growing sequence of token ids into text, piece by piece, with any ``tokenizers`` decoder.

    Only a window of recent ids is decoded: from ``prefix`` (the start of the piece before the last) to the
    end. The new piece is the part of the window's text past the text of ``prefix:read``; decoding some
    earlier ids with it lets decoders that treat a text's first token differently (a leading space
    stripped, a word-piece joined) decode the new ids as they would inside the whole text. A window whose
    text ends in U+FFFD (an incomplete UTF-8 sequence of byte-level tokens) is held back until the ids that
    complete it come, so that a piece never splits a character.
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # start of the decoding window
        self._read = 0  # end of the ids already turned into text
        self._prefix_text: str | None = ""  # decode(ids[prefix:read]), made when first needed

    def _window(self) -> tuple[str, str]:
        """(the text of ``prefix:read``, the text of the whole window)."""
        if self._prefix_text is None:
            self._prefix_text = self._decode(self._ids[self._prefix : self._read])
        return self._prefix_text, self._decode(self._ids[self._prefix :])

    def push(self, ids: Iterable[int]) -> str:
        """The text that ``ids`` add (empty while it would end in an incomplete character)."""
        self._ids.extend(ids)
        before, text = self._window()
        if len(text) <= len(before) or text.endswith(REPLACEMENT):
            return ""
        self._prefix, self._read, self._prefix_text = self._read, len(self._ids), None
        if self._prefix > _KEEP_IDS:
            del self._ids[: self._prefix]
            self._read -= self._prefix
            self._prefix = 0
        return text[len(before) :]

    def finish(self) -> str:
        """The text of the ids held back (with U+FFFD for a character that was never completed)."""
        if self._read == len(self._ids):
            return ""
        before, text = self._window()
        self._prefix = self._read = len(self._ids)
        self._prefix_text = ""
        return text[len(before) :]


class SymbolDecoder:
    """The text of symbol ids (models trained on instance files): each symbol after a space."""

    def __init__(self, symbol: Callable[[int], str]):
        self._symbol = symbol

    def push(self, ids: Iterable[int]) -> str:
        symbol = self._symbol
        return "".join(" " + symbol(i) for i in ids)

    def finish(self) -> str:
        return ""


def stop_list(stop: Sequence[str] | str | None) -> list[str]:
    """The stop strings of a ``stop`` argument (one string, several, or None); empty ones are dropped."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, Iterable) and not isinstance(stop, (bytes, bytearray, memoryview)):
        stops = list(stop)
    else:
        stops = [stop]
    for s in stops:
        if not isinstance(s, str):
            raise MemlmError(f"stop must be a str or a list of str, got {type(s).__name__} {s!r}")
        checks.text(s, "a stop string")
    return [s for s in stops if s]


class StopCutter:
    """Passes text on until the first stop string, holding back what could be the start of one.

    The text is cut before the stop string that is completed first (of two completed at the same character,
    before the longer one). Only new text is searched, together with the last ``longest stop - 1``
    characters before it (a stop string may straddle the two).
    """

    def __init__(self, stops: list[str]):
        self._stops = stops
        self._overlap = max(map(len, stops), default=1) - 1
        self._tail = ""  # the last `overlap` characters of all text seen
        self._pending = ""  # text seen but not passed on: it may start a stop string
        self.stopped = False

    def feed(self, text: str) -> str:
        """What of ``text`` (and of the text held back before it) can be passed on now."""
        if self.stopped or not text:
            return ""
        if not self._stops:
            return text
        window = self._tail + text
        cut = self._first_stop(window)
        if cut is not None:
            self.stopped = True
            # The stop string starts at window[cut:], after what was passed on (it was held back).
            kept = self._pending + text
            return kept[: max(len(kept) - (len(window) - cut), 0)]
        self._tail = window[-self._overlap :] if self._overlap else ""
        pending = self._pending + text
        hold = self._held(pending)
        self._pending = pending[len(pending) - hold :] if hold else ""
        return pending[: len(pending) - hold]

    def finish(self) -> str:
        """The text held back, once no more comes."""
        rest, self._pending = ("" if self.stopped else self._pending), ""
        return rest

    def _first_stop(self, window: str) -> int | None:
        best: tuple[int, int] | None = None
        for s in self._stops:
            at = window.find(s)
            if at >= 0 and (best is None or (at + len(s), at) < best):
                best = (at + len(s), at)
        return None if best is None else best[1]

    def _held(self, text: str) -> int:
        """The length of the longest end of ``text`` that a stop string starts with (0 if none)."""
        for n in range(min(self._overlap, len(text)), 0, -1):
            end = text[-n:]
            if any(s.startswith(end) for s in self._stops):
                return n
        return 0


def id_chunks(next_ids: Callable[[int], list[int]], total: int, chunks: tuple[int, int]) -> Iterator[list[int]]:
    """The ids of a generation of ``total`` tokens, chunk by chunk: ``next_ids(n)`` gives up to n more (none
    at the end), asked for in chunks: (first, largest) size, see :func:`next_chunk`."""
    remaining = total
    size, largest = chunks
    while remaining > 0:
        started = time.perf_counter()
        ids = next_ids(min(size, remaining))
        if not ids:
            return
        size = next_chunk(size, time.perf_counter() - started, largest)
        remaining -= len(ids)
        yield ids


def pieces(
    next_ids: Callable[[int], list[int]], total: int, decoder, stops: list[str], chunks: tuple[int, int]
) -> Iterator[str]:
    """The text of a generation of ``total`` tokens, piece by piece (ids asked for as :func:`id_chunks`
    asks), cut before the first of ``stops``."""
    cutter = StopCutter(stops)
    for ids in id_chunks(next_ids, total, chunks):
        piece = cutter.feed(decoder.push(ids))
        if piece:
            yield piece
        if cutter.stopped:
            return
    piece = cutter.feed(decoder.finish())
    piece += cutter.finish()
    if piece:
        yield piece
