"""Checks made before any work is done, so that a bad argument fails at once (rather than after the text
was tokenised): build options (validated by the core when its ``TrainOptions`` are made), memory budgets,
output files and folders, the numbers and names of queries and generations, text. A bad value is a
one-line :class:`MemlmError` that shows it as it was given (never wrapped or clamped by a conversion);
file-system problems are :class:`OSError` subclasses naming the path."""

from __future__ import annotations

import errno
import math
import numbers
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from memlm._core import MAX_WIDTH, UNKNOWN, Query, Sampling, TrainOptions
from memlm.errors import MemlmError

#: The largest count the core takes (a signed 64-bit number). A larger ``top_k`` or ``k`` asks for more
#: than any model has (all classes, all distances) and is clamped to it.
LARGEST_COUNT = 2**63 - 1
#: The largest memory budget the core takes, in bytes (a signed 64-bit number): 8 EiB.
LARGEST_MEMORY = 2**63 - 1
#: Generated tokens and seeds are unsigned 64-bit numbers in the core: each must be below this.
UNSIGNED_64_BITS = 2**64


def train_options(
    width: int = 16,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    temp_dir: str | Path | None = None,
    keep_tokens: bool = False,
) -> TrainOptions:
    """The core's build options: width (1..64), weighting and algorithm names (``algorithms`` as names or
    one comma-separated string), a writable ``temp_dir``; a :class:`MemlmError` names what is wrong."""
    if not whole(width) or not 1 <= width <= MAX_WIDTH:
        raise MemlmError(f"width must be between 1 and {MAX_WIDTH}, got {shown(width)}")
    names = algorithms.split(",") if isinstance(algorithms, str) else list(algorithms)
    if temp_dir is not None:
        writable_folder(temp_dir)
    return TrainOptions(
        width=int(width),
        weighting=name(weighting, "weighting"),
        algorithms=[name(algorithm, "algorithms").strip() for algorithm in names],
        temp_dir=None if temp_dir is None else Path(temp_dir),
        keep_tokens=flag(keep_tokens, "keep_tokens"),
    )


def whole(value) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def shown(value) -> str:
    """``value`` as the user gave it, for messages: a whole number in full (never as a conversion wrapped
    or clamped it), anything else as its repr (``True``, ``2.0``, ``'3'``)."""
    return str(int(value)) if whole(value) else repr(value)


def count(value, what: str, minimum: int = 0) -> int:
    """``value`` as an int, once it is a whole number >= ``minimum``; one beyond :data:`LARGEST_COUNT`
    (more than any model has) is clamped to it."""
    if not whole(value):
        raise MemlmError(f"{what} must be a whole number, got {shown(value)}")
    if value < minimum:
        raise MemlmError(f"{what} must be at least {minimum}, got {shown(value)}")
    return min(int(value), LARGEST_COUNT)


def unsigned_64(value, what: str) -> int:
    """``value`` as an int, once it is a whole number in [0, 2**64) (the core's unsigned 64-bit numbers)."""
    if not whole(value) or not 0 <= value < UNSIGNED_64_BITS:
        raise MemlmError(f"{what} must be a whole number in [0, 2**64), got {shown(value)}")
    return int(value)


def real(value, what: str) -> float:
    """``value`` as a float, once it is a real number (a Python or numpy int or float, not a bool); an int
    too large for a float is infinite."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise MemlmError(f"{what} must be a number, got {shown(value)}")
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def positive(value, what: str) -> float:
    """``value`` as a float, once it is a positive finite number."""
    number = real(value, what)
    if not (math.isfinite(number) and number > 0):
        raise MemlmError(f"{what} must be a positive finite number, got {shown(value)}")
    return number


def flag(value, what: str) -> bool:
    """``value`` once it is True or False (a Python or numpy bool; 1 and 0 are numbers, not flags)."""
    if not isinstance(value, (bool, np.bool_)):
        raise MemlmError(f"{what} must be True or False, got {shown(value)}")
    return bool(value)


def name(value, what: str) -> str:
    """``value`` once it is a str (the core checks that it names something it knows)."""
    if not isinstance(value, str):
        raise MemlmError(f"{what} must be a name (a str), got {shown(value)}")
    return value


def query(top_k, algorithm, k, vote, decay) -> Query:
    """The core's query, once every argument is of its kind and in its range: ``top_k`` >= 0 (0: all
    classes), ``k`` >= 1, ``decay`` positive and finite, whatever the algorithm and the vote (a value that
    does not apply must still be a valid one); the core checks the names."""
    return Query(
        algorithm=name(algorithm, "algorithm"),
        k=count(k, "k", minimum=1),
        vote=name(vote, "vote"),
        decay=positive(decay, "decay"),
        top_k=count(top_k, "top_k"),
    )


def sampling(do_sample, temperature, top_k, top_p) -> Sampling:
    """The core's sampling options, once each is of its kind and in its range (checked whether or not
    ``do_sample`` is on): ``temperature`` positive and finite, ``top_k`` >= 0, ``top_p`` in (0, 1]."""
    nucleus = real(top_p, "top_p")
    if not 0 < nucleus <= 1:
        raise MemlmError(f"top_p must be in (0, 1], got {shown(top_p)}")
    return Sampling(
        do_sample=flag(do_sample, "do_sample"),
        temperature=positive(temperature, "temperature"),
        top_k=count(top_k, "top_k"),
        top_p=nucleus,
    )


def text(value, what: str = "the text") -> str:
    """``value`` once it is a str that is valid Unicode: no lone surrogate (what undecodable bytes become
    under ``errors='surrogateescape'``, or a JSON escape such as ``\\ud800``), which no tokenizer can encode."""
    if not isinstance(value, str):
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise MemlmError(f"give {what} as str, not bytes (decode the bytes first)")
        raise MemlmError(f"give {what} as str, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise MemlmError(
                f"{what} is not valid Unicode: a lone surrogate {value[e.start]!r} at position {e.start}"
            ) from None
    return value


def memory_budget(memory: int | None) -> int | None:
    """A build's memory budget in bytes: None (no budget) or a whole number in [1, 2**63)."""
    if memory is None:
        return None
    if not whole(memory):
        raise MemlmError(f"memory must be a whole number of bytes, got {shown(memory)}")
    if memory <= 0:
        raise MemlmError(f"memory must be a positive number of bytes, got {shown(memory)}")
    if memory > LARGEST_MEMORY:
        raise MemlmError(f"memory must be at most 2**63 - 1 bytes (8 EiB), got {shown(memory)}")
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
