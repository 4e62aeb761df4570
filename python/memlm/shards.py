"""Shards and merging: a *shard* is tokenised text stored on its own (``memlm train --shard``); merging
makes one model of any number of shards, or of models that kept their training tokens (``memlm merge``).

Tokenising is the slow part of training: shards let it run on many machines. Merging concatenates the
token ids in the order given and builds the model of the whole, so the merged model equals the model
trained on the concatenated corpus: counts add, weights and tie-breaks are those of the whole text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from memlm._core import file_kind, read_shard, write_shard
from memlm.checks import callback, memory_budget, not_an_input, output_file, shown_path, train_options
from memlm.errors import MemlmError, ModelFormatError, TokenizerMismatchError
from memlm.model import Model
from memlm.tokenization import TokenizerSpec
from memlm.training import _metadata, load, spec_or_path, tokenize, train_token_ids


def make_shard(
    sources: Iterable[str | Path] | str | Path,
    output: str | Path,
    tokenizer: str | Path | TokenizerSpec | None = None,
    text_field: str = "text",
    errors: str = "strict",
    progress=None,
) -> dict:
    """Tokenises a corpus and writes the ids as a shard file (atomically); returns its metadata. The output
    path is checked before the corpus is read."""
    callback(progress)
    output = output_file(output)
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    not_an_input(output, [*sources, None if isinstance(tokenizer, TokenizerSpec) else tokenizer])
    spec = spec_or_path(tokenizer)
    tokens, lengths, spec, fields = tokenize(sources, spec, text_field, errors, progress)
    write_shard(output, tokens, lengths, spec.vocab_size, spec.to_blob(), _metadata(**fields))
    return fields


def _read_tokens(path: str | Path) -> tuple[np.ndarray, np.ndarray, TokenizerSpec, dict]:
    """(ids, block lengths, tokenizer, metadata) of a shard, or of a model that kept its tokens. The kind
    is told by the magic number without blocking (a FIFO is refused at once); what is no model is read
    as a shard, whose errors name it (an empty file, a bad magic number)."""
    if file_kind(path) != "model":
        tokens, lengths, _vocab, blob, metadata = read_shard(path)
        try:
            meta = json.loads(metadata)
        except ValueError as e:
            raise ModelFormatError(f"{shown_path(path)}: the metadata section of the shard is not JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ModelFormatError(f"{shown_path(path)}: the metadata section of the shard is not a JSON object")
        spec = TokenizerSpec.from_section(blob, str(meta.get("tokenizer", "?")), f"{shown_path(path)} (a shard)")
        return tokens, lengths, spec, meta
    model = load(path, verify=True)
    kept = model.training_tokens() if model.has_tokenizer else None
    if kept is None:
        raise ModelFormatError(
            f"{shown_path(path)}: the model holds no training tokens to merge "
            "(train it with --keep-tokens, or merge shards)"
        )
    return kept[0], kept[1], model.tokenizer, model.metadata


def _gather(paths: Iterable[str | Path]) -> tuple[np.ndarray, np.ndarray, TokenizerSpec, dict]:
    paths = list(paths)
    if not paths:
        raise MemlmError("nothing to merge")
    parts = [_read_tokens(p) for p in paths]
    spec = parts[0][2]
    for path, part in zip(paths, parts, strict=True):
        if part[2].sha256 != spec.sha256:
            raise TokenizerMismatchError(
                f"{shown_path(path)} was tokenised with {part[2].name!r}, {shown_path(paths[0])} with {spec.name!r}"
            )
    tokens = np.concatenate([p[0] for p in parts]).astype(spec.id_dtype, copy=False)
    lengths = np.concatenate([p[1] for p in parts])
    fields = dict(
        sources=[s for p in parts for s in p[3].get("sources", [])],
        merged_from=[os.fspath(p) for p in paths],
        tokenizer=spec.name,
        tokenizer_sha256=spec.sha256,
        blocks=int(lengths.size),
        tokens=int(tokens.size),
    )
    return tokens, lengths, spec, fields


def merge(
    paths: Iterable[str | Path],
    width: int = 16,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    memory: int | None = None,
    temp_dir: str | Path | None = None,
    progress=None,
    keep_tokens: bool = False,
    output: str | Path | None = None,
) -> Model:
    """The model of the concatenated text of ``paths`` (shards, or models trained with ``keep_tokens``), in
    that order. The other arguments are those of :func:`memlm.train_token_ids`, checked before any input
    is read."""
    train_options(width, weighting, algorithms, temp_dir, keep_tokens)
    memory_budget(memory)
    callback(progress)
    paths = list(paths)
    if output is not None:
        not_an_input(output_file(output), paths)
    tokens, lengths, spec, fields = _gather(paths)
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
        output=output,
    )


def merge_shards(paths: Iterable[str | Path], output: str | Path) -> dict:
    """Concatenates shards (or models' kept tokens) into one shard file; returns its metadata. The output
    path is checked before any input is read."""
    output = output_file(output)
    paths = list(paths)
    not_an_input(output, paths)
    tokens, lengths, spec, fields = _gather(paths)
    write_shard(output, tokens, lengths, spec.vocab_size, spec.to_blob(), _metadata(**fields))
    return fields
