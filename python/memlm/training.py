"""Training: corpus -> blocks -> token ids -> IGTree (in the Rust core), and loading model files."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np

from memlm import __version__
from memlm import cluster as on_cluster
from memlm._core import ALGORITHMS, WEIGHTINGS, CoreModel
from memlm.building import BASELINE_BYTES as BASELINE_BYTES
from memlm.building import FIXED_BYTES_PER_TOKEN as FIXED_BYTES_PER_TOKEN
from memlm.building import KNESER_NEY_BYTES_PER_TOKEN as KNESER_NEY_BYTES_PER_TOKEN
from memlm.building import MIN_PARTITION_BYTES, build_model, encoded, partition_memory
from memlm.building import check_spelled as check_spelled
from memlm.checks import block_lengths as checked_lengths
from memlm.checks import callback, flag, memory_budget, not_an_input, output_file, path_list, token_ids, train_options
from memlm.corpus import no_text
from memlm.errors import MemlmError
from memlm.model import Model
from memlm.provenance import OriginsRecorder
from memlm.tokenization import TokenizerSpec

__all__ = [
    "ALGORITHMS",
    "WEIGHTINGS",
    "load",
    "partition_memory",
    "spec_or_path",
    "tokenize",
    "train",
    "train_instances",
    "train_token_ids",
]


def needs_instance_base(algorithms) -> bool:
    """Deprecated: whether ``algorithms`` need the unpruned instance base (``TrainOptions.instance_base``)."""
    warnings.warn(
        "memlm.training.needs_instance_base is deprecated: memlm.checks.train_options(algorithms=...).instance_base",
        DeprecationWarning,
        stacklevel=2,
    )
    return train_options(algorithms=algorithms).instance_base


def _metadata(**fields) -> str:
    return json.dumps({"memlm_version": __version__, "created": created_stamp(), **fields})


def created_stamp() -> str:
    """When a model or shard is made, as its metadata's ``created`` says: now, in local time; or, under the
    reproducible-builds convention, the time the environment variable SOURCE_DATE_EPOCH gives (seconds since
    1970, in UTC), so that the same build makes the same file byte for byte. A :class:`MemlmError` when that
    variable is set but not a whole number of seconds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if not (epoch.isascii() and epoch.isdigit()):  # "²" is a digit to str.isdigit, not to int()
        raise MemlmError(f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, got {epoch!r}")
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(int(epoch)))
    except (OverflowError, OSError, ValueError):
        raise MemlmError(f"SOURCE_DATE_EPOCH is beyond the dates this system can show: {epoch}") from None


def _with_tokenizer(metadata: str, tokenizer: TokenizerSpec) -> str:
    """Metadata given by a caller: a JSON object, to which the tokenizer's name and hash are added (a model
    finds its tokenizer by them); a different hash already there is an error."""
    try:
        fields = json.loads(metadata)
    except (TypeError, ValueError) as e:
        raise MemlmError(f"metadata must be a JSON object (a str), got {metadata!r:.60} ({e})") from None
    if not isinstance(fields, dict):
        raise MemlmError(f"metadata must be a JSON object, got {metadata!r:.60}")
    if fields.setdefault("tokenizer_sha256", tokenizer.sha256) != tokenizer.sha256:
        raise MemlmError("the metadata's tokenizer_sha256 is not the hash of the tokenizer given")
    fields.setdefault("tokenizer", tokenizer.name)
    return json.dumps(fields)


def tokenize(
    sources: Iterable[str | Path] | str | Path,
    tokenizer: str | Path | TokenizerSpec | None = None,
    text_field: str = "text",
    errors: str = "strict",
    progress=None,
    origins: OriginsRecorder | None = None,
) -> tuple[np.ndarray, np.ndarray, TokenizerSpec, dict]:
    """Reads and tokenises a corpus as a stream: (token ids in the narrowest dtype, block lengths, the
    tokenizer, metadata fields naming the sources). An empty corpus is a :class:`CorpusError`. ``origins``
    hears where each block came from (and is checked to match the tokens: :func:`check_spelled`)."""
    sources = path_list(sources, "sources")
    spec = spec_or_path(tokenizer)
    tokens, lengths = encoded(sources, spec, text_field, errors, progress, origins)
    if tokens.size == 0:
        raise no_text(sources)
    return tokens, lengths, spec, corpus_fields(sources, spec, tokens, lengths)


def corpus_fields(sources: Iterable[str | Path], spec: TokenizerSpec, tokens: np.ndarray, lengths: np.ndarray) -> dict:
    """The metadata fields of a model trained on ``sources`` (as given): the sources, the tokenizer, counts."""
    return dict(
        sources=[str(s) for s in sources],
        tokenizer=spec.name,
        tokenizer_sha256=spec.sha256,
        blocks=len(lengths),
        tokens=int(tokens.size),
    )


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
    output: str | Path | None = None,
    provenance: bool = False,
    cluster: str | None = None,
) -> Model:
    """Trains a model on raw text.

    ``sources``: files, directories (read recursively), ``.gz`` files, JSONL files (``text_field`` of each
    record) or ``"-"`` for stdin; read as a stream and tokenised in parallel batches, token ids kept as
    uint16 when the vocabulary allows. ``tokenizer``: a ``tokenizers`` JSON file (GPT-2 BPE by default).
    ``algorithms``: what the model must answer; ``tribl2`` or ``ib1`` add the unpruned instance base to
    the file (IGTree is always there). ``memory``: budget in bytes for the whole build (see
    :func:`train_token_ids`). ``progress(phase, done, total)``: called as reading and building advance.
    ``keep_tokens``: store the token ids in the model too (2 bytes per token), so that :func:`memlm.merge`
    can add text to it later. ``output``: also save the model there. ``provenance``: store a provenance
    index (where each training token came from: source, byte offset; about 3 bytes per token besides the
    text the scoring statistics keep anyway), so that :meth:`Model.explain` cites training passages; it needs a
    byte-level BPE tokenizer (GPT-2's and its like). ``cluster``: build on a Dask cluster, ``"tcp://HOST:PORT"``
    (a running scheduler) or ``"local:N"`` (N worker processes here), with ``temp_dir`` a folder the client and
    every worker see (:mod:`memlm.cluster`; needs ``memlm[dask]``): the same model file.

    Every argument is checked before the corpus is read.
    """
    options = train_options(width, weighting, algorithms, temp_dir, keep_tokens)
    recorder = provenance_recorder(provenance, errors)
    memory = memory_budget(memory)
    callback(progress)
    created_stamp()  # SOURCE_DATE_EPOCH, checked now
    place = None if cluster is None else on_cluster.parse_cluster(cluster)
    sources = path_list(sources, "sources")
    if output is not None:
        output = output_file(output)
        not_an_input(output, [*sources, None if isinstance(tokenizer, TokenizerSpec) else tokenizer])
    spec = spec_or_path(tokenizer)
    if place is not None:

        def metadata_of(tokens: np.ndarray, lengths: np.ndarray) -> str:
            return _metadata(**corpus_fields(sources, spec, tokens, lengths))

        return on_cluster.train(
            place, sources, spec, text_field, errors, options, memory, progress, output, provenance, metadata_of
        )
    tokens, lengths, spec, fields = tokenize(sources, spec, text_field, errors, progress, recorder)
    origins = None if recorder is None else recorder.to_bytes()
    return build_model(tokens, lengths, spec, options, _metadata(**fields), memory, progress, output, origins)


def provenance_recorder(provenance: bool, errors: str) -> OriginsRecorder | None:
    """The recorder of the blocks' origins when ``provenance`` asks for them (None otherwise); an error with
    ``errors="replace"``, whose replaced bytes would shift the offsets cited after them."""
    if not flag(provenance, "provenance"):
        return None
    if errors == "replace":
        raise MemlmError(
            "--provenance needs the text read as it is (--errors strict): a replaced byte would shift the "
            "source offsets of the passages after it"
        )
    return OriginsRecorder()


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
    output: str | Path | None = None,
    origins: bytes | None = None,
    cluster: str | None = None,
) -> Model:
    """Trains on text already tokenised: all token ids concatenated and the length of every block.

    ``memory``: a budget in bytes for the whole process. The interpreter and tokenizer (160 MiB), the token
    ids (held by numpy and by the core, and a copy for the Kneser-Ney statistics) and ~16 bytes per token
    for the feature weights and the finished trie are set aside first; the trie is then built in
    partitions (subtrees) that fit the rest, each spilled to ``temp_dir`` and assembled at the end. The
    Kneser-Ney statistics are computed after the trie, in one piece (~80 bytes per token at their peak,
    the trie and the model's image included), which the budget must also hold. A budget too small for
    either is an error that names the minimum. ``output``: also save the model there. ``origins``: where
    each block came from (a serialised :mod:`memlm.provenance` store, as shards made with ``provenance``
    hold), for a provenance index. ``cluster``: build on a Dask cluster (``tcp://HOST:PORT`` or ``local:N``,
    as :func:`memlm.train`), the ids sent to the workers as one shard.
    """
    if not isinstance(tokenizer, TokenizerSpec):
        kind = type(tokenizer).__name__
        raise MemlmError(f"tokenizer must be a TokenizerSpec (e.g. TokenizerSpec.from_file(PATH)), got {kind}")
    options = train_options(width, weighting, algorithms, temp_dir, keep_tokens)
    memory = memory_budget(memory)
    callback(progress)
    place = None if cluster is None else on_cluster.parse_cluster(cluster)
    output = None if output is None else output_file(output)
    tokens = token_ids(
        tokens, "tokens", tokenizer.vocab_size, unknown=False, dtype=tokenizer.id_dtype, vocabulary="the tokenizer's"
    )
    block_lengths = checked_lengths(block_lengths)
    if metadata is None:
        metadata = _metadata(
            sources=[], tokenizer=tokenizer.name, tokenizer_sha256=tokenizer.sha256, tokens=int(tokens.size)
        )
    else:
        metadata = _with_tokenizer(metadata, tokenizer)
    if place is not None:
        return on_cluster.train_tokens(
            place, tokens, block_lengths, tokenizer, options, memory, progress, output, metadata, origins
        )
    return build_model(tokens, block_lengths, tokenizer, options, metadata, memory, progress, output, origins)


def train_instances(
    path: str | Path,
    weighting: str = "gain_ratio",
    algorithms: str | Iterable[str] = ("igtree",),
    status=None,
    output: str | Path | None = None,
    progress=None,
) -> Model:
    """Trains on a TiMBL column-format instance file (``f1 ... fW class`` per line, ``_`` for padding).

    The model keeps the file's own symbol table and has no tokenizer; its width is the file's.
    ``output``: also save the model there. ``progress(phase, done, total)``: called as reading (in bytes)
    and building advance, as in :func:`train`; ``status(name)``: a context manager around the whole
    (e.g. a spinner). Every argument is checked before the file is read.
    """
    options = train_options(weighting=weighting, algorithms=algorithms)
    callback(progress)
    callback(status, "status")
    if output is not None:
        output = output_file(output)
        not_an_input(output, [path])
    phase: AbstractContextManager = (status or (lambda _n: nullcontext()))("building the IGTree")
    with phase:
        core = CoreModel.train_instance_file(path, _metadata(sources=[str(path)]), options, progress=progress)
    model = Model(core)
    if output is not None:
        model.save(output)
    return model


def load(
    path: str | Path,
    tokenizer: str | Path | TokenizerSpec | None = None,
    verify: bool = False,
    mmap: bool = True,
) -> Model:
    """Opens a model file: header and small sections are checked (milliseconds for a model of any size);
    the first query that reads a trie (the IGTree, or the instance base of TRIBL2 and IB1) checks that
    trie's checksums once (one pass over its bytes: 2-15 ms for a model of two million tokens at W=16),
    so a damaged file raises :class:`ModelFormatError`, never gives a wrong answer. ``verify=True`` checks
    every checksum and structural invariant now (as :meth:`Model.verify` and ``memlm verify`` do). With
    ``tokenizer``, checks it is the model's own.

    ``mmap=True`` (the default) memory-maps the file: it opens at once and only the pages that queries
    touch are read, but the file must not be truncated or rewritten in place while the model is open (the
    process would be killed by SIGBUS, as with any memory-mapped file; memlm's own writers replace files by
    renaming, which is safe). ``mmap=False`` reads the whole file into memory instead, for files that other
    programs may rewrite. A path that is not a regular file (a folder, a FIFO) raises an OSError."""
    model = Model(CoreModel.load(path, verify, mmap), path=path, verify=verify)
    if tokenizer is not None:
        model.check_tokenizer(spec_or_path(tokenizer))
    return model


_DEPRECATED = {
    "shard_memory": ("partition_memory", partition_memory),
    "MIN_SHARD_BYTES": ("MIN_PARTITION_BYTES", MIN_PARTITION_BYTES),
}


def __getattr__(name: str):
    """Old names of the build's partitions (once called shards): still found, with a DeprecationWarning."""
    if name in _DEPRECATED:
        new, value = _DEPRECATED[name]
        warnings.warn(f"memlm.training.{name} is deprecated: use {new}", DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
