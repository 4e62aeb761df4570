"""Training: corpus -> blocks -> token ids -> IGTree (in the Rust core), and loading model files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np

from memlm import __version__
from memlm._core import CoreModel
from memlm.corpus import read_blocks
from memlm.errors import MemlmError
from memlm.model import Model
from memlm.tokenization import TokenizerSpec

WEIGHTINGS = ("gain_ratio", "info_gain")
ALGORITHMS = ("igtree", "tribl2", "ib1")


def needs_instance_base(algorithms) -> bool:
    """Whether `algorithms` (names, or one comma-separated string) need the unpruned instance base."""
    names = algorithms.split(",") if isinstance(algorithms, str) else list(algorithms)
    unknown = [a for a in names if a not in ALGORITHMS]
    if unknown or not names:
        raise MemlmError(f"unknown algorithm(s) {unknown or names}: choose from {', '.join(ALGORITHMS)}")
    return any(a in ("tribl2", "ib1") for a in names)


def _metadata(**fields) -> str:
    return json.dumps({"memlm_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields})


def train(
    sources: Iterable[str | Path] | str | Path,
    width: int = 16,
    tokenizer: str | Path | TokenizerSpec | None = None,
    text_field: str = "text",
    errors: str = "strict",
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    status=None,
) -> Model:
    """Trains a model on raw text.

    ``sources``: files, directories (read recursively), ``.gz`` files, JSONL files (``text_field`` of each
    record) or ``"-"`` for stdin. ``tokenizer``: a ``tokenizers`` JSON file (GPT-2 BPE by default).
    ``status``: optional callable taking a phase name, returning a context manager (used by the CLI to
    show progress). ``algorithms``: what the model must answer; ``tribl2`` or ``ib1`` add the unpruned
    instance base to the file (IGTree is always there).
    """
    needs_instance_base(algorithms)  # fail on a bad name before reading the corpus
    if isinstance(sources, (str, Path)):
        sources = [sources]
    phase = status or (lambda _name: nullcontext())
    spec = tokenizer if isinstance(tokenizer, TokenizerSpec) else TokenizerSpec.from_file(tokenizer)
    with phase("reading corpus"):
        blocks = read_blocks(sources, text_field=text_field, errors=errors)
    with phase(f"tokenising {len(blocks):,} blocks"):
        tokens, lengths = spec.encode_blocks(blocks)
    del blocks
    metadata = _metadata(
        sources=[str(s) for s in sources],
        tokenizer=spec.name,
        tokenizer_sha256=spec.sha256,
        blocks=len(lengths),
        tokens=int(tokens.size),
    )
    with phase(f"building the IGTree over {tokens.size:,} tokens"):
        return train_token_ids(tokens, lengths, spec, width, weighting, algorithms, metadata)


def train_token_ids(
    tokens,
    block_lengths,
    tokenizer: TokenizerSpec,
    width: int = 16,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    metadata: str | None = None,
) -> Model:
    """Trains on text already tokenised: all token ids concatenated (uint32) and the length of every block."""
    tokens = np.ascontiguousarray(tokens, dtype=np.uint32)
    block_lengths = np.ascontiguousarray(block_lengths, dtype=np.uint64)
    if metadata is None:
        metadata = _metadata(
            sources=[], tokenizer=tokenizer.name, tokenizer_sha256=tokenizer.sha256, tokens=int(tokens.size)
        )
    core = CoreModel.train_tokens(
        tokens,
        block_lengths,
        width,
        tokenizer.vocab_size,
        weighting,
        tokenizer.to_blob(),
        metadata,
        needs_instance_base(algorithms),
    )
    return Model(core, tokenizer)


def train_instances(
    path: str | Path,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    status=None,
) -> Model:
    """Trains on a TiMBL column-format instance file (``f1 ... fW class`` per line, ``_`` for padding).

    The model keeps the file's own symbol table and has no tokenizer.
    """
    instance_base = needs_instance_base(algorithms)
    phase: AbstractContextManager = (status or (lambda _n: nullcontext()))("building the IGTree")
    with phase:
        core = CoreModel.train_instance_file(Path(path), weighting, _metadata(sources=[str(path)]), instance_base)
    return Model(core)


def load(path: str | Path, tokenizer: str | Path | TokenizerSpec | None = None, verify: bool = False) -> Model:
    """Opens a model file, memory-mapped: header and small sections are checked (milliseconds for a model
    of any size), the tries are read page by page as queries touch them. ``verify=True`` also checks every
    checksum and structural invariant first (as :meth:`Model.verify` and ``memlm verify`` do). With
    ``tokenizer``, checks it is the model's own."""
    model = Model(CoreModel.load(Path(path), verify))
    if tokenizer is not None:
        spec = tokenizer if isinstance(tokenizer, TokenizerSpec) else TokenizerSpec.from_file(tokenizer)
        model.check_tokenizer(spec)
    return model
