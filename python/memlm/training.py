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
from memlm.corpus import iter_blocks, no_text
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


def tokenize(
    sources: Iterable[str | Path] | str | Path,
    tokenizer: str | Path | TokenizerSpec | None = None,
    text_field: str = "text",
    errors: str = "strict",
    progress=None,
) -> tuple[np.ndarray, np.ndarray, TokenizerSpec, dict]:
    """Reads and tokenises a corpus as a stream: (token ids in the narrowest dtype, block lengths, the
    tokenizer, metadata fields naming the sources). An empty corpus is a :class:`CorpusError`."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    spec = spec_or_path(tokenizer)
    report = progress or (lambda *_: None)
    tokens, lengths = spec.encode_stream(
        iter_blocks(sources, text_field=text_field, errors=errors),
        progress=lambda fraction, _tokens: report("reading and tokenising", int(fraction * 1000), 1000),
    )
    if tokens.size == 0:
        raise no_text(sources)
    fields = dict(
        sources=[str(s) for s in sources],
        tokenizer=spec.name,
        tokenizer_sha256=spec.sha256,
        blocks=len(lengths),
        tokens=int(tokens.size),
    )
    return tokens, lengths, spec, fields


def train(
    sources: Iterable[str | Path] | str | Path,
    width: int = 16,
    tokenizer: str | Path | TokenizerSpec | None = None,
    text_field: str = "text",
    errors: str = "strict",
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    memory: int | None = None,
    temp_dir: str | Path | None = None,
    progress=None,
    keep_tokens: bool = False,
) -> Model:
    """Trains a model on raw text.

    ``sources``: files, directories (read recursively), ``.gz`` files, JSONL files (``text_field`` of each
    record) or ``"-"`` for stdin; read as a stream and tokenised in parallel batches, token ids kept as
    uint16 when the vocabulary allows. ``tokenizer``: a ``tokenizers`` JSON file (GPT-2 BPE by default).
    ``algorithms``: what the model must answer; ``tribl2`` or ``ib1`` add the unpruned instance base to
    the file (IGTree is always there). ``memory``: budget in bytes for the whole build (see
    :func:`train_token_ids`). ``progress(phase, done, total)``: called as reading and building advance.
    ``keep_tokens``: store the token ids in the model too (2 bytes per token), so that :func:`memlm.merge`
    can add text to it later.
    """
    needs_instance_base(algorithms)  # fail on a bad name before reading the corpus
    tokens, lengths, spec, fields = tokenize(sources, tokenizer, text_field, errors, progress)
    return train_token_ids(
        tokens,
        lengths,
        spec,
        width,
        weighting,
        algorithms,
        _metadata(**fields),
        memory=memory,
        temp_dir=temp_dir,
        progress=progress,
        keep_tokens=keep_tokens,
    )


def spec_or_path(tokenizer: str | Path | TokenizerSpec | None) -> TokenizerSpec:
    """A tokenizer given as a spec, a JSON file, or None for the default GPT-2 tokenizer."""
    return tokenizer if isinstance(tokenizer, TokenizerSpec) else TokenizerSpec.from_file(tokenizer)


def train_token_ids(
    tokens,
    block_lengths,
    tokenizer: TokenizerSpec,
    width: int = 16,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    metadata: str | None = None,
    memory: int | None = None,
    temp_dir: str | Path | None = None,
    progress=None,
    keep_tokens: bool = False,
) -> Model:
    """Trains on text already tokenised: all token ids concatenated and the length of every block.

    ``memory``: a budget in bytes for the whole process. The interpreter and tokenizer (128 MiB), the token
    ids (held by numpy and by the core) and ~16 bytes per token for the feature weights and the finished
    model are set aside first; the trie is then built in shards that fit the rest, spilled to ``temp_dir``.
    A budget too small for the fixed part is an error that names the minimum.
    """
    tokens = np.ascontiguousarray(tokens, dtype=tokenizer.id_dtype)
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
        shard_memory=None if memory is None else shard_memory(memory, tokens.size, tokens.itemsize),
        temp_dir=None if temp_dir is None else Path(temp_dir),
        progress=progress,
        keep_tokens=keep_tokens,
    )
    return Model(core, tokenizer)


#: What a build needs besides the shards, per token and besides the ids: block offsets, the feature-weight
#: buffer or the finished model (not at once), measured at W = 16 on GPT-2 text.
FIXED_BYTES_PER_TOKEN = 16
#: The interpreter, numpy, the tokenizer and its batch buffers, counted against every budget.
BASELINE_BYTES = 128 << 20
#: The smallest share of the budget a shard may have.
MIN_SHARD_BYTES = 8 << 20


def shard_memory(memory: int, n_tokens: int, id_bytes: int) -> int:
    """The working memory left for each trie shard out of a whole-build budget of ``memory`` bytes."""
    fixed = BASELINE_BYTES + n_tokens * (2 * id_bytes + FIXED_BYTES_PER_TOKEN)
    if memory - fixed < MIN_SHARD_BYTES:
        need = (fixed + MIN_SHARD_BYTES) / 2**20
        raise MemlmError(
            f"a memory budget of {memory / 2**20:.0f} MiB is too small for {n_tokens:,} tokens: "
            f"give at least {need:.0f} MiB"
        )
    return memory - fixed


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
        model.check_tokenizer(spec_or_path(tokenizer))
    return model
