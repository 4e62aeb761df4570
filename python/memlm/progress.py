"""Progress of long builds on stderr (a bar with the ETA per phase on a terminal, a line per phase otherwise),
and the sizes of memory budgets as the command line takes them (``8G``)."""

from __future__ import annotations

import sys
import time
from decimal import Decimal, InvalidOperation

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from memlm.checks import LARGEST_MEMORY, memory_error
from memlm.errors import MemlmError


class BuildProgress:
    """A ``progress(phase, done, total)`` callback for :func:`memlm.train` that shows each phase."""

    def __init__(self, console: Console | None = None):
        self._console = console or Console(stderr=True)
        self._bars: Progress | None = None
        self._tasks: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._finished: set[str] = set()

    def __enter__(self) -> BuildProgress:
        if self._console.is_terminal:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self._started:
            self._started[phase] = time.perf_counter()
            if self._bars is not None:
                self._tasks[phase] = self._bars.add_task(phase, total=total)
        if self._bars is not None:
            self._bars.update(self._tasks[phase], completed=done, total=total)
        elif done == total and phase not in self._finished:
            # Without a terminal (logs), a line per phase that took long enough to matter: once, however
            # often the phase reports that it is done.
            self._finished.add(phase)
            seconds = time.perf_counter() - self._started[phase]
            if seconds >= 1.0:
                print(f"memlm: {phase}: done in {seconds:.1f} s", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """Bytes from a size such as ``8G``, ``512M``, ``1.5k``, ``7EiB`` or ``1000000`` (powers of 1024), parsed exactly
    (no float rounding): from 1 byte to :data:`memlm.checks.LARGEST_MEMORY` (8 EiB less one byte); a fraction of a byte
    is dropped. A :class:`MemlmError` shows ``text`` as given."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = Decimal(number) * scale
    except InvalidOperation:
        raise MemlmError(f"not a size: {text!r} (use e.g. 8G, 512M)") from None
    if not value.is_finite() or not 1 <= value <= LARGEST_MEMORY:
        raise memory_error(repr(text))
    return int(value)
