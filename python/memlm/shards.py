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
from typing import NamedTuple

import numpy as np

from memlm import cluster as on_cluster
from memlm._core import file_kind, read_shard, write_shard
from memlm.checks import callback, flag, memory_budget, not_an_input, output_file, path_list, shown_path, train_options
from memlm.errors import MemlmError, ModelFormatError, TokenizerMismatchError
from memlm.model import Model
from memlm.provenance import Origins, concatenated
from memlm.tokenization import TokenizerSpec
from memlm.training import _metadata, created_stamp, load, provenance_recorder, spec_or_path, tokenize, train_token_ids


def make_shard(
    sources: Iterable[str | Path] | str | Path,
    output: str | Path,
    tokenizer: str | Path | TokenizerSpec | None = None,
    text_field: str = "text",
    errors: str = "strict",
    progress=None,
    provenance: bool = False,
) -> dict:
    """Tokenises a corpus and writes the ids as a shard file (atomically); returns its metadata. The output
    path is checked before the corpus is read. ``provenance``: the shard also holds where each block came
    from, so that a model merged from it can have a provenance index (see :func:`memlm.train`)."""
    callback(progress)
    recorder = provenance_recorder(provenance, errors)
    output = output_file(output)
    sources = path_list(sources, "sources")
    not_an_input(output, [*sources, None if isinstance(tokenizer, TokenizerSpec) else tokenizer])
    spec = spec_or_path(tokenizer)
    tokens, lengths, spec, fields = tokenize(sources, spec, text_field, errors, progress, recorder)
    origins = None if recorder is None else recorder.to_bytes()
    write_shard(output, tokens, lengths, spec.vocab_size, spec.to_blob(), _metadata(**fields), origins)
    return fields


class _Part(NamedTuple):
    """What a merge input holds: ids, block lengths, tokenizer, metadata, and the blocks' origins (None
    when it has none)."""

    tokens: np.ndarray
    lengths: np.ndarray
    spec: TokenizerSpec
    metadata: dict
    origins: Origins | None


def _read_tokens(path: str | Path) -> _Part:
    """The tokenised text of a shard, or of a model that kept its tokens. The kind is told by the magic
    number without blocking (a FIFO is refused at once); what is no model is read as a shard, whose errors
    name it (an empty file, a bad magic number)."""
    if file_kind(path) != "model":
        tokens, lengths, _vocab, blob, metadata, origins = read_shard(path)
        try:
            meta = json.loads(metadata)
        except ValueError as e:
            raise ModelFormatError(f"{shown_path(path)}: the metadata section of the shard is not JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ModelFormatError(f"{shown_path(path)}: the metadata section of the shard is not a JSON object")
        spec = TokenizerSpec.from_section(blob, str(meta.get("tokenizer", "?")), f"{shown_path(path)} (a shard)")
        where = f"{shown_path(path)} (a shard)"
        return _Part(tokens, lengths, spec, meta, None if origins is None else Origins.from_bytes(origins, where))
    model = load(path, verify=True)
    kept = model.training_tokens() if model.has_tokenizer else None
    if kept is None:
        raise ModelFormatError(
            f"{shown_path(path)}: the model holds no training tokens to merge "
            "(train it with --keep-tokens, or merge shards)"
        )
    origins = model.origins() if model.has_provenance else None
    return _Part(kept[0], kept[1], model.tokenizer, model.metadata, origins)


def _gather(
    paths: Iterable[str | Path], provenance: bool = False
) -> tuple[np.ndarray, np.ndarray, TokenizerSpec, dict, bytes | None]:
    """The inputs' text concatenated: (ids, block lengths, tokenizer, metadata fields, the blocks' origins
    when every input holds them, else None: an error with ``provenance``)."""
    paths = list(paths)
    if not paths:
        raise MemlmError("nothing to merge")
    parts = [_read_tokens(p) for p in paths]
    spec = parts[0].spec
    for path, part in zip(paths, parts, strict=True):
        if part.spec.sha256 != spec.sha256:
            raise TokenizerMismatchError(
                f"{shown_path(path)} was tokenised with {part.spec.name!r}, {shown_path(paths[0])} with {spec.name!r}"
            )
        if provenance and part.origins is None:
            raise MemlmError(
                f"{shown_path(path)} holds no provenance origins: make its shard with --provenance "
                "(or train the model with --provenance --keep-tokens)"
            )
    tokens = np.concatenate([p.tokens for p in parts]).astype(spec.id_dtype, copy=False)
    lengths = np.concatenate([p.lengths for p in parts])
    with_origins = [p.origins for p in parts if p.origins is not None]
    origins = concatenated(with_origins) if len(with_origins) == len(parts) else None
    fields = dict(
        sources=[s for p in parts for s in p.metadata.get("sources", [])],
        merged_from=[os.fspath(p) for p in paths],
        tokenizer=spec.name,
        tokenizer_sha256=spec.sha256,
        blocks=int(lengths.size),
        tokens=int(tokens.size),
    )
    return tokens, lengths, spec, fields, origins


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
    provenance: bool = False,
    cluster: str | None = None,
) -> Model:
    """The model of the concatenated text of ``paths`` (shards, or models trained with ``keep_tokens``), in
    that order. It has a provenance index when every input holds its blocks' origins (shards made with
    ``provenance``, models trained with it and ``keep_tokens``); ``provenance=True`` makes that an error
    otherwise. ``cluster``: build on a Dask cluster, as :func:`memlm.train` does (the inputs are read here,
    and need not be on the workers' storage). The other arguments are those of
    :func:`memlm.train_token_ids`, checked before any input is read."""
    train_options(width, weighting, algorithms, temp_dir, keep_tokens)  # checked before any input is read
    flag(provenance, "provenance")
    memory = memory_budget(memory)
    callback(progress)
    created_stamp()  # SOURCE_DATE_EPOCH, checked now
    if cluster is not None:
        on_cluster.parse_cluster(cluster)  # checked before any input is read
    paths = path_list(paths, "paths")
    if output is not None:
        output = output_file(output)
        not_an_input(output, paths)
    tokens, lengths, spec, fields, origins = _gather(paths, provenance)
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
        origins=origins,
        cluster=cluster,
    )


def merge_shards(paths: Iterable[str | Path], output: str | Path, provenance: bool = False) -> dict:
    """Concatenates shards (or models' kept tokens) into one shard file, with their blocks' origins when every
    input has them (``provenance=True``: an error otherwise); returns its metadata. The output path is
    checked before any input is read."""
    flag(provenance, "provenance")
    output = output_file(output)
    paths = path_list(paths, "paths")
    not_an_input(output, paths)
    tokens, lengths, spec, fields, origins = _gather(paths, provenance)
    write_shard(output, tokens, lengths, spec.vocab_size, spec.to_blob(), _metadata(**fields), origins)
    return fields
