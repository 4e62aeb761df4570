"""Checks made before any corpus is read, so that a bad argument fails at once rather than after the text
was tokenised: build options (validated by the core when its ``TrainOptions`` are made), memory budgets,
output files and folders. File-system problems are :class:`OSError` subclasses naming the path."""

from __future__ import annotations

import errno
import numbers
import tempfile
from collections.abc import Iterable
from pathlib import Path

from memlm._core import TrainOptions
from memlm.errors import MemlmError


def train_options(
    width: int = 16,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    temp_dir: str | Path | None = None,
    keep_tokens: bool = False,
) -> TrainOptions:
    """The core's build options: width (1..64), weighting and algorithm names (``algorithms`` as names or
    one comma-separated string), a writable ``temp_dir``; a :class:`MemlmError` names what is wrong."""
    names = algorithms.split(",") if isinstance(algorithms, str) else list(algorithms)
    if temp_dir is not None:
        writable_folder(temp_dir)
    return TrainOptions(
        width=width,
        weighting=weighting,
        algorithms=[name.strip() for name in names],
        temp_dir=None if temp_dir is None else Path(temp_dir),
        keep_tokens=keep_tokens,
    )


def memory_budget(memory: int | None) -> int | None:
    """A build's memory budget in bytes: None (no budget) or a positive whole number."""
    if memory is None:
        return None
    if isinstance(memory, bool) or not isinstance(memory, numbers.Integral) or memory <= 0:
        raise MemlmError(f"memory must be a positive number of bytes, got {memory!r}")
    return int(memory)


def writable_folder(folder: str | Path) -> Path:
    """``folder``, once it is known to be an existing folder in which files can be created."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(folder))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    try:
        # An unnamed file where the system allows it (O_TMPFILE): nothing is left behind.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        reason = f"cannot write in this folder ({e.strerror})"
        raise PermissionError(errno.EACCES, reason, str(folder)) from None
    return folder


def output_file(path: str | Path) -> Path:
    """``path``, once it is known that a file can be written there: not a folder, in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file to write", str(path))
    writable_folder(path.parent)
    return path
