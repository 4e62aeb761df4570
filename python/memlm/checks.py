"""Checks made before any work is done, so that a bad argument fails at once (rather than after the text
was tokenised). The core checks the ranges and names of its options (``Query``, ``Sampling``,
``TrainOptions``: made before any input is read) and the ids it is given; Python checks what the binding
cannot show as given or take as it is: bools (which it would read as 1 and 0), values of the wrong type,
whole numbers beyond 64 bits (which it saturates), widths before a corpus is read for `memlm instances`,
memory budgets, the ids of numpy arrays, output files and folders, text. A bad value is a one-line
:class:`MemlmError` that shows it as it was given, in the core's words where the core has some (see
:data:`CORE_WORDS`); file-system problems are :class:`OSError` subclasses naming the path."""

from __future__ import annotations

import errno
import numbers
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from memlm._core import ALGORITHMS, MAX_WIDTH, UNKNOWN, Query, Sampling, TrainOptions, file_kind
from memlm.errors import MemlmError

#: The largest memory budget the core takes, in bytes (a signed 64-bit number): 8 EiB less one byte.
LARGEST_MEMORY = 2**63 - 1
#: The smallest count the core can show as given (a signed 64-bit number; larger ones ask for more than
#: any model has, and the core clamps them).
SMALLEST_COUNT = -(2**63)
#: Generated tokens and seeds are the core's unsigned 64-bit numbers.
UNSIGNED_64_BITS = range(2**64)

#: The core's sentence for each option out of its range, said here only for the values the core cannot
#: show as given (beyond 64 bits, or beyond a float). tests/test_validation.py compares each with the
#: core's own message, so that the two cannot drift apart.
CORE_WORDS = {
    "width": f"width must be between 1 and {MAX_WIDTH}, got {{}}",
    "k": "k must be at least 1, got {}",
    "top_k": "top_k must be at least 0, got {}",
    "decay": "decay must be a positive finite number, got {}",
    "temperature": "temperature must be a positive finite number, got {}",
    "top_p": "top_p must be in (0, 1], got {}",
}


def train_options(
    width: int = 16,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    temp_dir: str | Path | None = None,
    keep_tokens: bool = False,
) -> TrainOptions:
    """The core's build options: ``width`` (1..64), ``algorithms`` as names or one comma-separated string.
    The core checks the weighting and algorithm names, and that files can be made in ``temp_dir`` (an
    :class:`OSError` naming it)."""
    names = algorithms.split(",") if isinstance(algorithms, str) else list(algorithms)
    if not names:
        raise MemlmError(f"algorithms must name at least one of {', '.join(ALGORITHMS)}, got none")
    return TrainOptions(
        width=context_width(width),
        weighting=name(weighting, "weighting"),
        algorithms=[name(algorithm, "algorithms").strip() for algorithm in names],
        temp_dir=None if temp_dir is None else Path(path_text(temp_dir, "temp_dir")),
        keep_tokens=flag(keep_tokens, "keep_tokens"),
    )


def context_width(value) -> int:
    """``value`` as an int, once it is a context width (1..64): checked here, before any corpus is read
    (`memlm instances` hands the width to the core only after tokenising)."""
    if not whole(value) or not 1 <= value <= MAX_WIDTH:
        raise MemlmError(CORE_WORDS["width"].format(shown(value)))
    return int(value)


def whole(value) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def shown(value) -> str:
    """``value`` as the user gave it, for messages: a whole number in full (never as a conversion wrapped
    or clamped it), anything else as its repr (``True``, ``2.0``, ``'3'``)."""
    return str(int(value)) if whole(value) else repr(value)


def count(value, what: str) -> int:
    """``value`` as an int for the core, once it is a whole number (the core checks its range; a count
    beyond 64 bits asks for more than any model has, all classes or distances, and the core clamps it)."""
    if not whole(value):
        raise MemlmError(f"{what} must be a whole number, got {shown(value)}")
    if value < SMALLEST_COUNT:
        raise MemlmError(CORE_WORDS[what].format(shown(value)))
    return int(value)


def amount(value, what: str, largest: int) -> int:
    """``value`` as an int, once it is a whole number in [0, largest]."""
    if not whole(value) or not 0 <= value <= largest:
        raise MemlmError(f"{what} must be a whole number from 0 to {largest:,}, got {shown(value)}")
    return int(value)


def unsigned_64(value, what: str) -> int:
    """``value`` as an int, once it is a whole number in [0, 2**64) (the core's unsigned 64-bit numbers)."""
    if not whole(value) or value not in UNSIGNED_64_BITS:
        raise MemlmError(f"{what} must be a whole number in [0, 2**64), got {shown(value)}")
    return int(value)


def real(value, what: str) -> float:
    """``value`` as a float for the core, once it is a real number (a Python or numpy int or float, not a
    bool); the core checks its range. An int too large for a float is out of every range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise MemlmError(f"{what} must be a number, got {shown(value)}")
    try:
        return float(value)
    except OverflowError:
        raise MemlmError(CORE_WORDS[what].format(shown(value))) from None


def flag(value, what: str) -> bool:
    """``value`` once it is True or False (a Python or numpy bool; 1 and 0 are numbers, not flags)."""
    if not isinstance(value, (bool, np.bool_)):
        raise MemlmError(f"{what} must be True or False, got {shown(value)}")
    return bool(value)


def callback(value, what: str = "progress"):
    """``value`` once it is None or can be called (a ``progress(phase, done, total)`` function)."""
    if value is not None and not callable(value):
        raise MemlmError(f"{what} must be a function (or None), got {shown(value)}")
    return value


def name(value, what: str) -> str:
    """``value`` once it is a str (the core checks that it names something it knows)."""
    if not isinstance(value, str):
        raise MemlmError(f"{what} must be a name (a str), got {shown(value)}")
    return value


def query(top_k, algorithm, k, vote, decay) -> Query:
    """The core's query, once every argument is of its kind; the core checks the names and ranges
    (``top_k`` >= 0, 0: all classes; ``k`` >= 1; ``decay`` positive), whatever the algorithm and the vote
    (a value that does not apply must still be a valid one)."""
    return Query(
        algorithm=name(algorithm, "algorithm"),
        k=count(k, "k"),
        vote=name(vote, "vote"),
        decay=real(decay, "decay"),
        top_k=count(top_k, "top_k"),
    )


def sampling(do_sample, temperature, top_k, top_p) -> Sampling:
    """The core's sampling options, once each is of its kind; the core checks their ranges whether or not
    ``do_sample`` is on (``temperature`` positive, ``top_k`` >= 0, ``top_p`` in (0, 1])."""
    return Sampling(
        do_sample=flag(do_sample, "do_sample"),
        temperature=real(temperature, "temperature"),
        top_k=count(top_k, "top_k"),
        top_p=real(top_p, "top_p"),
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
    if not whole(memory) or not 1 <= memory <= LARGEST_MEMORY:
        raise memory_error(shown(memory))
    return int(memory)


def memory_error(given: str) -> MemlmError:
    """The error for a memory budget out of range, ``given`` as the user wrote it."""
    return MemlmError(f"memory must be a whole number of bytes from 1 to 2**63 - 1 (8 EiB less one byte), got {given}")


def path_text(value, what: str) -> str:
    """The path ``value`` names, once it is a ``str`` or an ``os.PathLike`` naming one (bytes, a number or None
    where a path must be is an error naming ``what``)."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise MemlmError(f"{what} must be a path (a str or an os.PathLike), got {shown(value)[:200]}")
    return text


def path_list(value, what: str) -> list:
    """The paths of ``value``: one path, or an iterable of them (each a ``str`` or an ``os.PathLike``); an error
    naming ``what`` for anything else (bytes, a number, None)."""
    try:
        if isinstance(value, (bytes, bytearray)):
            raise TypeError
        given = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    except TypeError:
        raise MemlmError(f"{what} must be a path or an iterable of paths, got {shown(value)[:200]}") from None
    for item in given:
        path_text(item, f"each of the {what}")
    return given


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
    """``path``, once it is known that a file can be written there: not the empty path, not a folder, not
    a FIFO, device or socket (in the core's words; a symbolic link to a regular file is written through),
    in a writable folder."""
    if path_text(path, "output") == "":
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file to write", str(path))
    if path.exists() and not path.is_file():
        file_kind(path)  # the core's OSError for what is not a regular file, without blocking on a FIFO
    writable_folder(path.parent)
    return path


def shown_path(path: str | bytes | os.PathLike) -> str:
    """``path`` as the core's messages show it (one line whatever its name): control characters escaped
    as Rust escapes them (``\\n``, ``\\t``, ``\\u{1b}``), bytes that are not UTF-8 (kept by Python as
    lone surrogates) as ``\\xff``, the empty path as ``''``."""
    text = os.fsdecode(path)
    if not text:
        return "''"
    return "".join(_SHOWN.get(c) or _shown_char(c) for c in text)


#: Rust's escapes of the control characters that have a short one.
_SHOWN = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\0": "\\0"}


def _shown_char(c: str) -> str:
    if "\udc80" <= c <= "\udcff":  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{ord(c) - 0xDC00:02x}"
    if unicodedata.category(c) == "Cc":
        return f"\\u{{{ord(c):x}}}"
    return c


def not_an_input(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Raises :class:`MemlmError` when ``output`` is already one of ``inputs`` (the same file, whatever the
    name: through symlinks or hard links, or a file inside an input folder), so that writing it cannot
    destroy what is being read. ``-`` is standard input, the file it was redirected from (``< FILE``);
    None and the empty path are skipped; a missing output is no input."""
    try:
        target = os.stat(output)
    except OSError:
        return
    key = (target.st_dev, target.st_ino)
    for source in inputs:
        if source is None or os.fspath(source) == "":
            continue
        if os.fspath(source) == "-":
            if _same_as_stdin(key):
                raise MemlmError(
                    f"{shown_path(output)}: the output is also an input (standard input): write it to another file"
                )
            continue
        path = Path(source)
        candidates = path.rglob("*") if path.is_dir() else [path]
        for candidate in candidates:
            try:
                status = candidate.stat()
            except OSError:
                continue
            if (status.st_dev, status.st_ino) == key:
                same = (
                    "also an input"
                    if candidate == Path(output)
                    else f"the same file as the input {shown_path(candidate)}"
                )
                raise MemlmError(f"{shown_path(output)}: the output is {same}: write it to another file")


#: The core's sentences for a bad id (its messages for the ids of a prefix; arrays' are prefixed by their name).
NEGATIVE_ID = "id {} is negative (ids are whole numbers from 0)"
OUTSIDE_ID = "id {} is outside {} vocabulary of {} ids"


def prefix_ids(ids: list, n_ids: int) -> list:
    """``ids`` (of a prefix, or to decode) once each is an int of the model's vocabulary (or the unknown
    id) as Python ints, refused in the words the binding uses for :meth:`memlm.Model.predict`'s."""
    for i in ids:
        if not whole(i):
            raise MemlmError(f"ids must be ints, got {shown(i)} (a {type(i).__name__})")
        if i < 0:
            raise MemlmError(NEGATIVE_ID.format(i))
        if i >= n_ids and i != UNKNOWN:
            raise MemlmError(OUTSIDE_ID.format(i, "the model's", n_ids))
    return [int(i) for i in ids]


def _same_as_stdin(key: tuple[int, int]) -> bool:
    """Whether standard input reads the file of ``key`` (device, inode); a closed stdin reads nothing."""
    try:
        status = os.fstat(0)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) == key


def token_ids(
    values, what: str, n_ids: int, ndim: int = 1, unknown: bool = True, dtype=np.uint32, vocabulary="the model's"
) -> np.ndarray:
    """``values`` as a contiguous array of ``dtype`` (uint32) and ``ndim`` dimensions, once it is known to hold only ids
    in ``[0, n_ids)`` (``vocabulary``'s, named in errors; or the unknown id, :data:`memlm._core.UNKNOWN`,
    where ``unknown``): whole numbers of
    an integer dtype, never rounded, wrapped or taken modulo 2**32. Vectorised: a few passes over the
    array, no Python loop."""
    if isinstance(values, np.ma.MaskedArray):
        raise MemlmError(f"{what} is a masked array, whose mask would be ignored: give a plain array of the ids to use")
    array = np.asarray(values)
    if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
        raise MemlmError(f"{what} must be whole-number token ids (an integer array), got dtype {array.dtype}")
    if array.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(n, width)"
        raise MemlmError(f"{what} must be a {ndim}-D array {shape}, got {array.ndim} dimensions")
    if array.size:
        low, high = array.min(), array.max()
        if low < 0:
            raise MemlmError(f"{what}: {NEGATIVE_ID.format(low)}")
        if high >= n_ids:
            outside = array[array >= n_ids]
            if unknown:
                outside = outside[outside != UNKNOWN]
            if outside.size:
                raise MemlmError(f"{what}: {OUTSIDE_ID.format(outside[0], vocabulary, n_ids)}")
    return np.ascontiguousarray(array, dtype=dtype)


def block_lengths(values) -> np.ndarray:
    """Block lengths as the core takes them (uint64), once known to be whole numbers >= 0. A list or tuple
    is checked item by item and read exactly (numpy would make floats of ints beyond int64, and ints of
    bools)."""
    if isinstance(values, (list, tuple)):
        for value in values:
            if not whole(value):
                raise MemlmError(f"block_lengths must be whole numbers, got {shown(value)}")
            if value >= 2**64:
                raise MemlmError(f"block_lengths hold a length beyond 2**64 - 1 ({value})")
        if all(value >= 0 for value in values):
            values = np.array(values, dtype=np.uint64)
    lengths = np.asarray(values)
    if lengths.ndim != 1 or (lengths.dtype.kind not in "iu" and lengths.size):
        raise MemlmError(f"block_lengths must be a 1-D array of whole numbers, got dtype {lengths.dtype}")
    if lengths.size and lengths.min() < 0:
        raise MemlmError(f"block_lengths hold a negative length ({lengths.min()})")
    return np.ascontiguousarray(lengths, dtype=np.uint64)
