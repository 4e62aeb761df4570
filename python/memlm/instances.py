"""TiMBL's column format: one instance per line, ``f1 ... fW class``, the W tokens before a target and the
target, ``_`` for the padding before a block's start. ``memlm instances`` writes such files from a corpus,
:func:`memlm.train_instances` and ``memlm classify`` read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memlm import _core
from memlm._core import UNKNOWN
from memlm.checks import block_lengths as block_lengths_of
from memlm.checks import context_width, output_file, token_ids, whole
from memlm.errors import MemlmError


def write_instances(tokens, block_lengths, path: str | Path, width: int, vocab_size: int) -> None:
    """Writes every token of every block as an instance of width ``width`` (atomically).

    ``tokens``: the token ids of all blocks concatenated (uint16 or uint32), ``block_lengths`` their
    lengths; ``vocab_size``: the tokenizer's (its padding id, written as ``_``).
    """
    width = context_width(width)
    path = output_file(path)
    if not (whole(vocab_size) and 0 < vocab_size < UNKNOWN):
        raise MemlmError(f"vocab_size must be a whole number in [1, 2**32 - 1), got {vocab_size!r}")
    array = np.asarray(tokens)
    # Token ids below vocab_size (the padding id), kept as uint16 when they came so, never coerced.
    dtype = np.uint16 if array.dtype == np.uint16 else np.uint32
    tokens = token_ids(array, "tokens", int(vocab_size), unknown=False, dtype=dtype, vocabulary="the tokenizer's")
    _core.write_instances(tokens, block_lengths_of(block_lengths), width, int(vocab_size), path)
