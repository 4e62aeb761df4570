"""TiMBL's column format: one instance per line, ``f1 ... fW class``, the W tokens before a target and the
target, ``_`` for the padding before a block's start. ``memlm instances`` writes such files from a corpus,
:func:`memlm.train_instances` and ``memlm classify`` read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memlm import _core
from memlm.checks import output_file, train_options


def write_instances(tokens, block_lengths, path: str | Path, width: int, vocab_size: int) -> None:
    """Writes every token of every block as an instance of width ``width`` (atomically).

    ``tokens``: the token ids of all blocks concatenated (uint16 or uint32), ``block_lengths`` their
    lengths; ``vocab_size``: the tokenizer's (its padding id, written as ``_``).
    """
    train_options(width=width)  # the width's range, checked where the core checks it
    path = output_file(path)
    tokens = np.asarray(tokens)
    if tokens.dtype not in (np.uint16, np.uint32):
        tokens = tokens.astype(np.uint32)
    tokens = np.ascontiguousarray(tokens)
    lengths = np.ascontiguousarray(block_lengths, dtype=np.uint64)
    _core.write_instances(tokens, lengths, width, int(vocab_size), path)
