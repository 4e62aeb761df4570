"""Building a model from token ids, below :mod:`memlm.training` (the corpus, the user's arguments) and
:mod:`memlm.cluster` (a build on Dask), which both use it: tokenising a corpus's pieces (:func:`encoded`), the
memory budget's arithmetic (:func:`partition_memory`) and the build in the core (:func:`build_model`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from memlm._core import CoreModel, KneserNeyStatistics, Reduction, TrainOptions
from memlm.corpus import Piece, iter_blocks
from memlm.errors import MemlmError
from memlm.model import Model
from memlm.provenance import Origins, OriginsRecorder
from memlm.tokenization import TokenizerSpec


def check_spelled(tokens: np.ndarray, lengths: np.ndarray, spec: TokenizerSpec, block_bytes: np.ndarray) -> None:
    """Checks that each block's tokens spell its text (``block_bytes`` long in UTF-8) byte for byte, what a
    provenance index needs: a :class:`MemlmError` for a tokenizer that is not byte-level BPE, or that drops
    or changes bytes, or origins of other blocks."""
    sizes = spec.token_byte_lengths()
    if sizes is None:
        raise MemlmError(f"--provenance needs a byte-level BPE tokenizer (like GPT-2's), not {spec.name}")
    if block_bytes.size != lengths.size:
        raise MemlmError(f"the provenance origins hold {block_bytes.size:,} blocks, the text {lengths.size:,}")
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    spelled = np.add.reduceat(sizes[tokens].astype(np.int64), starts) if tokens.size else np.zeros(0, np.int64)
    if not np.array_equal(spelled, block_bytes.astype(np.int64)):
        raise MemlmError(f"the tokens do not spell the text their provenance origins describe ({spec.name})")


def encoded(
    sources: Iterable[str | Path | Piece],
    spec: TokenizerSpec,
    text_field: str = "text",
    errors: str = "strict",
    progress=None,
    origins: OriginsRecorder | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The token ids and block lengths of the sources (or :class:`memlm.corpus.Piece` objects), as
    :func:`memlm.training.tokenize` reads them; none for a corpus without text."""
    report = progress or (lambda *_: None)
    tokens, lengths = spec.encode_stream(
        iter_blocks(sources, text_field=text_field, errors=errors, origins=origins),
        progress=lambda fraction, _tokens: report("reading and tokenising", int(fraction * 1000), 1000),
    )
    if origins is not None:
        check_spelled(tokens, lengths, spec, np.asarray(origins.columns["block_bytes"], np.int64))
    return tokens, lengths


def build_model(
    tokens: np.ndarray,
    block_lengths: np.ndarray,
    tokenizer: TokenizerSpec,
    options: TrainOptions,
    metadata: str,
    memory: int | None,
    progress,
    output: Path | None,
    origins: bytes | None = None,
    reduced: tuple[Reduction, list[str], list[str]] | None = None,
    kneser_ney: KneserNeyStatistics | None = None,
) -> Model:
    """The model of the token blocks (and the save to ``output``); a cluster build passes ``reduced``, its
    statistics and the partitions its workers spilled (IGTree's, instance base's), assembled here, and the
    ``kneser_ney`` statistics it computed meanwhile."""
    if origins is not None:
        check_spelled(tokens, block_lengths, tokenizer, Origins.from_bytes(origins, "the origins given").block_bytes)
    core = CoreModel.train_tokens(
        tokens,
        block_lengths,
        tokenizer.vocab_size,
        tokenizer.to_blob(),
        metadata,
        options,
        partition_memory=None if memory is None else partition_memory(memory, tokens.size, tokens.itemsize),
        progress=progress,
        origins=origins,
        reduced=reduced,
        kneser_ney=kneser_ney,
    )
    model = Model(core, tokenizer)
    if output is not None:
        model.save(output)
    return model


#: What the trie build needs besides the partitions, per token and besides the ids and their copy (kept
#: for the Kneser-Ney statistics): block offsets, the feature-weight buffer or the finished trie (not at
#: once), measured at W = 16 on GPT-2 text.
FIXED_BYTES_PER_TOKEN = 16
#: The Kneser-Ney statistics are computed in one piece after the trie (not in partitions), and written
#: into the model's image array by array (each freed once in): that phase peaks 64-70 bytes per token
#: above what the process holds after tokenising at W = 16 (1.79M GPT-2 tokens: `memlm train` peaked at
#: 265-289 MiB there, the trie and the image included), which this covers: the floor of any budget
#: (tests/test_memory_budget.py).
KNESER_NEY_BYTES_PER_TOKEN = 80
#: The interpreter, numpy, the tokenizer with its fast path (tiktoken's and the ASCII encoder's tables) and its
#: batch buffers, counted against every budget.
BASELINE_BYTES = 160 << 20
#: The smallest share of the budget a partition of the trie build may have.
MIN_PARTITION_BYTES = 8 << 20


def partition_memory(memory: int, n_tokens: int, id_bytes: int) -> int:
    """The working memory left for each partition of the trie build out of a whole-build budget of
    ``memory`` bytes."""
    fixed = BASELINE_BYTES + n_tokens * (3 * id_bytes + FIXED_BYTES_PER_TOKEN)
    kneser_ney = BASELINE_BYTES + n_tokens * (2 * id_bytes + KNESER_NEY_BYTES_PER_TOKEN)
    if memory - fixed < MIN_PARTITION_BYTES or memory < kneser_ney:
        need = math.ceil(max(fixed + MIN_PARTITION_BYTES, kneser_ney) / 2**20)
        raise MemlmError(
            f"a memory budget of {_size(memory)} is too small for {n_tokens:,} tokens: give at least {need} MiB"
        )
    return memory - fixed


def _size(n: int) -> str:
    """A number of bytes for people: in MiB, or in bytes below one MiB (never "0 MiB")."""
    return f"{n / 2**20:.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"
