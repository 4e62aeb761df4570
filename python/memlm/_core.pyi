"""Type stubs of ``memlm._core``, the PyO3 binding of the Rust core (``rust/python``).

The binding only converts: numpy arrays and lists to slices, names to the core's enums, the core's
errors to the exception classes below. Every rule (padding, windowing, the classifiers' answers, vote
shares, sampling) lives in the core crate (``rust/core``). Only :class:`memlm.Model` (``model.py``) calls
a :class:`CoreModel`'s methods; ``training.py`` and ``shards.py`` only create one.

``make lint`` checks these stubs against the built module (``python -m mypy.stubtest memlm._core``).
"""

from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal, TypeAlias, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CoreModel",
    "AsciiBpe",
    "Query",
    "Answer",
    "TrainOptions",
    "Sampling",
    "Generation",
    "write_instances",
    "write_shard",
    "write_atomic",
    "read_shard",
    "read_shards",
    "file_kind",
    "class_counts",
    "weighing_tasks",
    "piece_bytes",
    "gain_terms",
    "spill_partition",
    "task_sizes",
    "ShardText",
    "Reduction",
    "KneserNeyStatistics",
    "MemlmError",
    "ModelFormatError",
    "InstanceFileError",
    "FORMAT_VERSION",
    "MAX_WIDTH",
    "UNKNOWN",
    "ALGORITHMS",
    "WEIGHTINGS",
    "VOTES",
    "SECTIONS",
    "BULK_SECTIONS",
]

#: Token ids as training and shards store them: uint16 when the vocabulary fits, else uint32.
_TokenIds: TypeAlias = npt.NDArray[np.uint16] | npt.NDArray[np.uint32]
#: A prefix or prompt: ids of any length (a list, a tuple, a numpy array or any iterable of ints).
_Prefix: TypeAlias = Iterable[int] | npt.NDArray[np.integer[Any]]

#: Version of the model file format this build reads and writes.
FORMAT_VERSION: int
#: Largest context width W.
MAX_WIDTH: int
#: The id that matches nothing: what an unknown symbol of an instance-file model maps to.
UNKNOWN: int
#: Names the core parses and prints (one place for each list).
ALGORITHMS: tuple[str, ...]  # ("igtree", "tribl2", "ib1")
WEIGHTINGS: tuple[str, ...]  # ("gain_ratio", "info_gain")
VOTES: tuple[str, ...]  # ("majority", "inverse_distance", "exponential_decay")
#: Every section of the file format: id -> name (as errors name it, e.g. 3 -> "GainRatio").
SECTIONS: dict[int, str]
#: Ids of the sections that grow with the data (the tries, the tails, the training tokens): their
#: checksums are checked by ``verify`` or at the first query that reads them, not when a file opens.
BULK_SECTIONS: frozenset[int]

class MemlmError(Exception):
    """Base class of memlm's errors."""

class ModelFormatError(MemlmError):
    """A model or shard file is missing parts, truncated, corrupt, foreign or of another format version."""

class InstanceFileError(MemlmError):
    """A TiMBL column-format instance file could not be read."""

@final
class Query:
    """How to answer a context; every field is checked when the query is made (MemlmError)."""

    def __new__(
        cls, algorithm: str = "igtree", k: int = 1, vote: str = "majority", decay: float = 1.0, top_k: int = 5
    ) -> Query: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def k(self) -> int: ...
    @property
    def vote(self) -> str: ...
    @property
    def decay(self) -> float: ...
    @property
    def top_k(self) -> int:
        """How many classes an answer keeps, best first (0: all); not used by :meth:`CoreModel.generation`,
        where the :class:`Sampling` decides (1 when greedy, its ``top_k`` when sampling)."""

@final
class Answer:
    """One classifier's answer for one context (made by :meth:`CoreModel.answer` only)."""

    @property
    def classes(self) -> list[int]:
        """At most ``top_k`` classes, the winner first."""
    @property
    def votes(self) -> list[float]:
        """Their votes: the matched node's counts (IGTree) or the neighbours' (weighted) votes."""
    @property
    def total(self) -> float:
        """The sum of all votes, kept or not (a vote's share is ``vote / total``)."""
    @property
    def depth(self) -> int:
        """Context positions matched, in feature-weight order, before any k-NN search."""
    @property
    def distance(self) -> float:
        """IGTree: summed weight of the unmatched positions; k-NN: the nearest neighbours' distance."""

@final
class TrainOptions:
    """Everything a build takes besides the text, checked when made (before any corpus is read)."""

    def __new__(
        cls,
        width: int = 16,
        weighting: str = "gain_ratio",
        algorithms: Sequence[str] = ["igtree"],
        temp_dir: str | PathLike[str] | None = None,
        keep_tokens: bool = False,
    ) -> TrainOptions: ...
    @property
    def width(self) -> int: ...
    @property
    def weighting(self) -> str: ...
    @property
    def instance_base(self) -> bool:
        """Whether the unpruned instance base (TRIBL2, IB1) is stored too."""
    @property
    def temp_dir(self) -> Path | None: ...
    @property
    def keep_tokens(self) -> bool: ...

@final
class Sampling:
    """How generation picks tokens (Hugging Face's names); checked when made."""

    def __new__(
        cls, do_sample: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0
    ) -> Sampling: ...
    @property
    def do_sample(self) -> bool: ...
    @property
    def temperature(self) -> float: ...
    @property
    def top_k(self) -> int: ...
    @property
    def top_p(self) -> float: ...

@final
class Generation:
    """A generation in progress: the core extends the context token by token (GIL released)."""

    @property
    def remaining(self) -> int:
        """How many tokens are still to come."""
    def next_ids(self, n: int) -> list[int]:
        """Generates up to ``n`` more tokens; fewer (or none) once ``max_new_tokens`` are done."""

@final
class CoreModel:
    """A trained model, built in memory, or memory-mapped or read from a file.

    Every method raises :class:`MemlmError` (not pyo3's PanicException) should the core ever panic."""

    @staticmethod
    def train_tokens(
        tokens: _TokenIds,
        block_lengths: npt.NDArray[np.uint64],
        vocab_size: int,
        tokenizer: bytes,
        metadata: str,
        options: TrainOptions,
        partition_memory: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        origins: bytes | None = None,
        reduced: tuple[Reduction, Sequence[str | PathLike[str]], Sequence[str | PathLike[str]]] | None = None,
        kneser_ney: KneserNeyStatistics | None = None,
    ) -> CoreModel:
        """``partition_memory``: working memory of each partition of the trie build (spilled to the
        options' ``temp_dir``); None builds in one piece. ``progress(phase, done, total)`` hears how far
        the build got; an exception it raises (or Ctrl-C) stops the build and is raised again.
        ``origins``: the blocks' origins (opaque bytes), to give the model a provenance index. A cluster
        build passes ``reduced``: its statistics and the partition files its workers spilled (the IGTree's,
        the instance base's, in order), which are assembled instead of built; and the ``kneser_ney``
        statistics it computed meanwhile (checked to be these tokens'; taken once the other arguments are
        converted)."""
    @staticmethod
    def train_instance_file(
        path: str | PathLike[str],
        metadata: str,
        options: TrainOptions,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> CoreModel:
        """The model's width is the file's (columns minus one): ``options.width`` is not used.
        ``progress`` as for :meth:`train_tokens`."""
    @staticmethod
    def load(path: str | PathLike[str], verify: bool = False, mmap: bool = True) -> CoreModel:
        """Opens a model file, memory-mapped (``mmap``: the file must not be truncated or rewritten in place
        while the model is open) or read into memory. Checks the header and small sections; each trie's
        checksums are checked by the first query that reads it (ModelFormatError when damaged); ``verify``
        checks everything now. A path that is not a regular file raises OSError (IsADirectoryError for a
        folder, errno EINVAL "not a regular file (a FIFO)" and the like otherwise), without blocking."""
    def verify(self) -> None: ...
    def partition_sizes(self, ends: Sequence[int]) -> tuple[list[int], list[int], int]:
        """The bytes under each range of nearest-token ids ``[0, ends[0])``, ``[ends[0], ends[1])``, ...
        (the IGTree's, the Kneser-Ney statistics'), and the rest of the file."""
    def save(self, path: str | PathLike[str]) -> None: ...
    def training_tokens(self) -> tuple[_TokenIds, npt.NDArray[np.uint64]] | None:
        """(token ids, block lengths) when the model kept them, else None; ModelFormatError when damaged."""
    def neighbours(
        self, prefix: _Prefix, query: Query, most: int
    ) -> list[tuple[float, list[int], list[tuple[int, int]]]]:
        """The nearest neighbours behind the k-NN answer of ``query`` after ``prefix``: up to ``most``, nearest
        first, each (distance, its W values in column order with -1 where it stands for several instances
        that differ there, its (class, count) pairs)."""
    @property
    def has_provenance(self) -> bool: ...
    def provenance_origins(self) -> bytes | None:
        """The training blocks' origins (opaque bytes) when the model has a provenance index, else None."""
    def occurrences(self, token: int, prefix: _Prefix, depth: int, count: int) -> tuple[int, list[int]] | None:
        """(how many, up to ``count`` of their positions in ``training_text``) of the training tokens ``token``
        whose context matches the context after ``prefix`` to ``depth`` values in feature order; None without
        a provenance index."""
    def training_text(self) -> _TokenIds | None:
        """The training text the scoring statistics keep (blocks each preceded by the padding id), a copy."""
    @property
    def width(self) -> int: ...
    @property
    def n_symbols(self) -> int: ...
    @property
    def pad(self) -> int: ...
    @property
    def n_instances(self) -> int: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def size_breakdown(self) -> list[tuple[str, int]]:
        """Bytes of the model file per part (labels, children, distributions, ...)."""
    @property
    def has_instance_base(self) -> bool: ...
    @property
    def token_ids(self) -> bool: ...
    @property
    def weighting(self) -> str: ...
    @property
    def feature_order(self) -> list[int]: ...
    @property
    def gain_ratio(self) -> list[float]: ...
    @property
    def info_gain(self) -> list[float]: ...
    @property
    def metadata(self) -> str: ...
    @property
    def tokenizer_blob(self) -> bytes: ...
    @property
    def class_counts(self) -> npt.NDArray[np.uint64]:
        """Training frequency of every class."""
    def symbol(self, id: int) -> str: ...
    def symbol_id(self, symbol: str) -> int:
        """The id of a symbol string, or :data:`UNKNOWN`."""
    def answer(self, prefix: _Prefix, query: Query) -> Answer:
        """The answer after ``prefix`` (ids of any length: the last W count, a shorter one is padded). Ids
        are ints in [0, n_symbols) or UNKNOWN: a bool, a negative int, a float ... is MemlmError."""
    def answer_batch(
        self, contexts: npt.NDArray[np.uint32], query: Query, totals: bool = True
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64] | None,
        npt.NDArray[np.uint32],
        npt.NDArray[np.float64],
    ]:
        """Answers for an (n, W) array on all cores: classes (n, max(top_k, 1); -1 where fewer), votes
        (n, max(top_k, 1)), totals (n; None with ``totals=False``, which spares decoding the rest of each
        IGTree node's classes), depths (n), distances (n). ``top_k`` 0 keeps one class here, and
        there are no more columns than the model has classes (symbols seen as a target in training), so a
        huge ``top_k`` costs no more than all classes (MemlmError if even that does not fit in memory)."""
    def windows(
        self, tokens: npt.NDArray[np.uint32], block_lengths: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
        """(contexts (n, W), targets (n)) of every token of every block, each block left-padded."""
    def score_batch(
        self, contexts: npt.NDArray[np.uint32], targets: npt.NDArray[np.uint32]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
        """log10 probabilities of the targets under the scoring distribution, matched depths, OOV flags."""

    def score_document(
        self, contexts: npt.NDArray[np.uint32], targets: npt.NDArray[np.uint32], weights: Sequence[float]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
        """``score_batch`` for the windows of one document, in order, with the document cache weighted by
        ``weights`` (4: context lengths 0 to 3; the model's probabilities on all cores, the cache on one)."""

    @property
    def cache_weights(self) -> tuple[float, float, float, float] | None:
        """The document cache's weights fitted at training time (None: the model has none)."""

    def most_probable_batch(self, contexts: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32] | None:
        """The scoring distribution's most probable id after each context (None: the model has no
        Kneser-Ney statistics)."""

    def probabilities(self, prefix: _Prefix) -> npt.NDArray[np.float64]:
        """The scoring distribution after ``prefix``: one probability per symbol id, summing to 1."""
    def generation(
        self, prompt: _Prefix, max_new_tokens: int, query: Query, sampling: Sampling, seed: int | None = None
    ) -> Generation:
        """Generation after ``prompt`` (ids as for :meth:`answer`); ``seed`` None draws from the OS's
        entropy. ``query`` gives the classifier (algorithm, k, vote, decay); its ``top_k`` is not used: the
        sampling decides how many classes each step keeps (1 when greedy, ``sampling.top_k`` when
        sampling)."""
    def scoring_generation(
        self,
        prompt: npt.NDArray[np.uint32],
        max_new_tokens: int,
        sampling: Sampling,
        seed: int | None = None,
        cache_weights: Sequence[float] | None = None,
    ) -> Generation:
        """A generation of up to ``max_new_tokens`` after ``prompt`` (all its ids) from the scoring
        distribution, with the document cache weighted by ``cache_weights`` when given."""
    def classify_file(
        self, path: str | PathLike[str], output: str | PathLike[str] | None, distribution: bool, query: Query
    ) -> dict[str, float | int | bool]:
        """Classifies a TiMBL column file; writes TiMBL's ``-o`` layout to ``output`` (stdout when None).
        Returns instances, correct, has_classes and seconds."""

def write_instances(
    tokens: _TokenIds, block_lengths: npt.NDArray[np.uint64], width: int, pad: int, path: str | PathLike[str]
) -> None:
    """Writes token blocks as a TiMBL column-format instance file (atomically)."""

def write_shard(
    path: str | PathLike[str],
    tokens: _TokenIds,
    block_lengths: npt.NDArray[np.uint64],
    vocab_size: int,
    tokenizer: bytes,
    metadata: str,
    origins: bytes | None = None,
    scratch: bool = False,
) -> None:
    """Writes tokenised text (uint16 or uint32 ids, block lengths, the blocks' origins when given) as a shard
    file, atomically; ``scratch``: a build's intermediate file, not synced to disk."""

def read_shard(
    path: str | PathLike[str],
) -> tuple[_TokenIds, npt.NDArray[np.uint64], int, bytes, str, bytes | None]:
    """Opens and verifies a shard file: (token ids, block lengths, vocabulary size, tokenizer blob, metadata,
    the blocks' origins or None)."""

def read_shards(
    paths: Sequence[str | PathLike[str]], origins: bool
) -> tuple[_TokenIds, npt.NDArray[np.uint64], list[bytes | None]]:
    """The text of shards (of one tokenizer) one after the other, as a cluster build's workers read it: (token
    ids, block lengths, and with ``origins`` each shard's origins section or None, else an empty list)."""

def write_atomic(path: str | PathLike[str], data: bytes) -> None:
    """Writes bytes to a file atomically (a Ctrl-C during the write abandons it)."""

def file_kind(path: str | PathLike[str]) -> Literal["model", "shard"] | None:
    """The kind of a memlm file by its magic number ("model", "shard", or None for neither), reading only
    its first eight bytes; anything but a regular file raises OSError without blocking (a FIFO with no
    writer included)."""

@final
class AsciiBpe:
    """GPT-2's byte-level BPE on ASCII text (``rust/core/src/ascii_bpe.rs``): built from the tokens' bytes in
    rank order, it gives ranks; text that is not ASCII raises :class:`MemlmError`."""

    def __new__(cls, tokens: Sequence[bytes]) -> AsciiBpe: ...
    def encode(self, text: str) -> list[int]:
        """The ranks of one ASCII text."""
    def encode_texts(
        self, texts: Sequence[str], parallel: bool = True
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
        """ASCII texts' ranks concatenated and how many each has (the GIL released; on rayon's threads when
        ``parallel``)."""

# A cluster build's steps (memlm.cluster): what its workers compute, and what the client reduces.

#: Class counts: instances per symbol, and the index of each symbol's first instance (2**64 - 1: none).
_ClassCounts: TypeAlias = tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]
#: One feature's weight terms over a range of values: the values that occur, their instances,
#: P(v) H(C|v) and P(v) log2 P(v).
_ValueTerms: TypeAlias = tuple[
    npt.NDArray[np.uint32], npt.NDArray[np.uint64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]

def class_counts(tokens: _TokenIds, vocab_size: int) -> _ClassCounts:
    """The class counts of token ids (every token a target) of a vocabulary of ``vocab_size`` ids, over its
    symbols (those ids and the padding id)."""

def weighing_tasks(
    class_counts: Sequence[_ClassCounts], width: int, range: int
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """A cluster build's weighing tasks for shards of these ``class_counts`` (in corpus order) at ``width``:
    ``((feature, feature + 1), (start, end))`` per feature and per range of values, the ranges holding at
    most ``range`` instances of the summed class histogram, in value order."""

def piece_bytes(total_bytes: int, threads: int, tasks_per_thread: int) -> int:
    """The bytes of corpus a cluster build's tokenising task reads: ``total_bytes`` over ``threads`` worker
    threads, about ``tasks_per_thread`` pieces each, at least 64 KiB."""

@final
class ShardText:
    """The windows of shards' text at a width (their padding id the shards' vocabulary size), read once and
    kept by a worker for its tasks; an error for shards of other tokenizers."""

    def __new__(cls, shards: Sequence[str | PathLike[str]], width: int) -> ShardText: ...

def gain_terms(text: ShardText, features: tuple[int, int], values: tuple[int, int]) -> list[_ValueTerms]:
    """Per feature, its weight terms over the values ``[start, end)`` for the features ``[first, end)``
    (empty arrays for the others)."""

def spill_partition(
    text: ShardText,
    order: Sequence[int],
    class_counts: _ClassCounts,
    trie: Literal["igtree", "instance_base"],
    values: tuple[int, int],
    path: str | PathLike[str],
) -> None:
    """Builds the partition of ``trie`` whose first values (in feature ``order``) lie in ``[start, end)``,
    with the whole corpus's ``class_counts``, and writes it to ``path`` atomically."""

def task_sizes(
    instances: int, width: int, threads: int, tasks_per_thread: int, partition_memory: int | None = None
) -> tuple[int, int]:
    """How large a cluster build's tasks are: (the most instances of a weighing task's range of values, the
    most instances of a trie partition) for ``instances`` of ``width`` features on ``threads`` worker threads,
    about ``tasks_per_thread`` tasks each, with ``partition_memory`` bytes for a partition (None: no budget)."""

@final
class Reduction:
    """A cluster build's statistics, reduced: the class counts of its shards (in corpus order) and the
    feature weights' terms of its tasks (per feature, in value order); the same numbers, bit for bit, as
    one process computes."""

    def __new__(
        cls, class_counts: Sequence[_ClassCounts], gain_terms: Sequence[Sequence[_ValueTerms]]
    ) -> Reduction: ...
    @property
    def class_counts(self) -> _ClassCounts:
        """The whole corpus's class counts."""
    def order(self, weighting: str) -> list[int]:
        """The features in the order the IGTree tests them under ``weighting``."""
    def partitions(
        self, trie: Literal["igtree", "instance_base"], weighting: str, capacity: int
    ) -> list[tuple[int, int]]:
        """The partitions ``(start, end)`` of ``trie``, each of at most ``capacity`` instances (none when
        its root is a leaf)."""

@final
class KneserNeyStatistics:
    """The Kneser-Ney statistics of token blocks, computed on their own, for one build to take."""

    @staticmethod
    def compute(
        tokens: _TokenIds,
        block_lengths: npt.NDArray[np.uint64],
        width: int,
        vocab_size: int,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> KneserNeyStatistics:
        """The statistics at ``width``; ``progress`` as for :meth:`CoreModel.train_tokens`."""
