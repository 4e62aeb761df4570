"""Checks made before any corpus is read, so that a bad argument fails at once rather than after the text
was tokenised: build options (validated by the core when its ``TrainOptions`` are made), memory budgets,
output files and folders. File-system problems are :class:`OSError` subclasses naming the path."""

from __future__ import annotations

import errno
import numbers
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from memlm._core import UNKNOWN, TrainOptions
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


def whole(value) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def memory_budget(memory: int | None) -> int | None:
    """A build's memory budget in bytes: None (no budget) or a positive whole number."""
    if memory is None:
        return None
    if not whole(memory) or memory <= 0:
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


def not_an_input(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Raises :class:`MemlmError` when ``output`` is already one of ``inputs`` (the same file, whatever the
    name: through symlinks or hard links, or a file inside an input folder), so that writing it cannot
    destroy what is being read. ``-`` (stdin) and None are skipped; a missing output is no input."""
    try:
        target = os.stat(output)
    except OSError:
        return
    key = (target.st_dev, target.st_ino)
    for source in inputs:
        if source is None or str(source) == "-":
            continue
        path = Path(source)
        candidates = path.rglob("*") if path.is_dir() else [path]
        for candidate in candidates:
            try:
                status = candidate.stat()
            except OSError:
                continue
            if (status.st_dev, status.st_ino) == key:
                same = "also an input" if candidate == Path(output) else f"the same file as the input {candidate}"
                raise MemlmError(f"{output}: the output is {same}: write it to another file")


def token_ids(
    values, what: str, n_ids: int, ndim: int = 1, unknown: bool = True, dtype=np.uint32, vocabulary="the model's"
) -> np.ndarray:
    """``values`` as a contiguous array of ``dtype`` (uint32) and ``ndim`` dimensions, once it is known to hold only ids
    in ``[0, n_ids)`` (``vocabulary``'s, named in errors; or the unknown id, :data:`memlm._core.UNKNOWN`,
    where ``unknown``): whole numbers of
    an integer dtype, never rounded, wrapped or taken modulo 2**32. Vectorised: a few passes over the
    array, no Python loop."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
        raise MemlmError(f"{what} must be whole-number token ids (an integer array), got dtype {array.dtype}")
    if array.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(n, width)"
        raise MemlmError(f"{what} must be a {ndim}-D array {shape}, got {array.ndim} dimensions")
    if array.size:
        low, high = array.min(), array.max()
        if low < 0:
            raise MemlmError(f"{what}: id {low} is negative (ids are whole numbers from 0)")
        if high >= n_ids:
            outside = array[array >= n_ids]
            if unknown:
                outside = outside[outside != UNKNOWN]
            if outside.size:
                raise MemlmError(f"{what}: id {outside[0]} is outside {vocabulary} vocabulary of {n_ids} ids")
    return np.ascontiguousarray(array, dtype=dtype)


def block_lengths(values) -> np.ndarray:
    """Block lengths as the core takes them (uint64), once known to be whole numbers >= 0."""
    lengths = np.asarray(values)
    if lengths.ndim != 1 or (lengths.dtype.kind not in "iu" and lengths.size):
        raise MemlmError(f"block_lengths must be a 1-D array of whole numbers, got dtype {lengths.dtype}")
    if lengths.size and lengths.min() < 0:
        raise MemlmError(f"block_lengths hold a negative length ({lengths.min()})")
    return np.ascontiguousarray(lengths, dtype=np.uint64)
