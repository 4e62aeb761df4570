"""Type stubs of ``memlm._core``, the PyO3 binding of the Rust core (``rust/python``).

The binding only converts: numpy arrays and lists to slices, names to the core's enums, the core's
errors to the exception classes below. Every rule (padding, windowing, the classifiers' answers, vote
shares, sampling) lives in the core crate (``rust/core``). Only :class:`memlm.Model` (``model.py``) calls
a :class:`CoreModel`'s methods; ``training.py`` and ``shards.py`` only create one.
"""

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

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

class MemlmError(Exception):
    """Base class of memlm's errors."""

class ModelFormatError(MemlmError):
    """A model or shard file is missing parts, truncated, corrupt, foreign or of another format version."""

class InstanceFileError(MemlmError):
    """A TiMBL column-format instance file could not be read."""

class Query:
    """How to answer a context; every field is validated when the query is made (MemlmError)."""

    algorithm: str
    k: int
    vote: str
    decay: float
    #: How many classes an answer keeps, best first (0: all of them).
    top_k: int
    def __init__(
        self, algorithm: str = "igtree", k: int = 1, vote: str = "majority", decay: float = 1.0, top_k: int = 5
    ) -> None: ...

class Answer:
    """One classifier's answer for one context."""

    #: At most ``top_k`` classes, the winner first.
    classes: list[int]
    #: Their votes: the matched node's counts (IGTree) or the neighbours' (weighted) votes.
    votes: list[float]
    #: The sum of all votes, kept or not (a vote's share is ``vote / total``).
    total: float
    #: Context positions matched, in feature-weight order, before any k-NN search.
    depth: int
    #: IGTree: summed weight of the unmatched positions; k-NN: the nearest neighbours' distance.
    distance: float

class TrainOptions:
    """Everything a build takes besides the text, validated when made (before any corpus is read)."""

    width: int
    weighting: str
    #: Whether the unpruned instance base (TRIBL2, IB1) is stored too.
    instance_base: bool
    temp_dir: Path | None
    keep_tokens: bool
    def __init__(
        self,
        width: int = 16,
        weighting: str = "gain_ratio",
        algorithms: Sequence[str] = ("igtree",),
        temp_dir: str | PathLike | None = None,
        keep_tokens: bool = False,
    ) -> None: ...

class Sampling:
    """How generation picks tokens (Hugging Face's names); validated when made."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    def __init__(
        self, do_sample: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0
    ) -> None: ...

class Generation:
    """A generation in progress: the core extends the context token by token (GIL released)."""

    #: How many tokens are still to come.
    remaining: int
    def next_ids(self, n: int) -> list[int]:
        """Generates up to ``n`` more tokens; fewer (or none) once ``max_new_tokens`` are done."""

class CoreModel:
    """A trained model, built in memory, or memory-mapped or read from a file.

    Every method raises :class:`MemlmError` (not pyo3's PanicException) should the core ever panic."""

    @staticmethod
    def train_tokens(
        tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
        block_lengths: npt.NDArray[np.uint64],
        vocab_size: int,
        tokenizer: bytes,
        metadata: str,
        options: TrainOptions,
        partition_memory: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> CoreModel:
        """``partition_memory``: working memory of each partition of the trie build (spilled to the
        options' ``temp_dir``); None builds in one piece."""
    @staticmethod
    def train_instance_file(path: str | PathLike, metadata: str, options: TrainOptions) -> CoreModel:
        """The model's width is the file's (columns minus one): ``options.width`` is not used."""
    @staticmethod
    def load(path: str | PathLike, verify: bool = False, mmap: bool = True) -> CoreModel:
        """Opens a model file, memory-mapped (``mmap``: the file must not be truncated or rewritten in place
        while the model is open) or read into memory. Checks the header and small sections; each trie's
        checksums are checked by the first query that reads it (ModelFormatError when damaged); ``verify``
        checks everything now. A path that is not a regular file raises OSError (IsADirectoryError for a
        folder, errno EINVAL "not a regular file (a FIFO)" and the like otherwise), without blocking."""
    def verify(self) -> None: ...
    def save(self, path: str | PathLike) -> None: ...
    def training_tokens(self) -> tuple[np.ndarray, npt.NDArray[np.uint64]] | None:
        """(token ids, block lengths) when the model kept them, else None; ModelFormatError when damaged."""

    width: int
    n_symbols: int
    pad: int
    n_instances: int
    n_nodes: int
    nbytes: int
    size_breakdown: list[tuple[str, int]]
    has_instance_base: bool
    token_ids: bool
    weighting: str
    feature_order: list[int]
    gain_ratio: list[float]
    info_gain: list[float]
    metadata: str
    tokenizer_blob: bytes
    class_counts: npt.NDArray[np.uint64]

    def symbol(self, id: int) -> str: ...
    def symbol_id(self, symbol: str) -> int:
        """The id of a symbol string, or :data:`UNKNOWN`."""

    def answer(self, prefix: Sequence[int], query: Query) -> Answer:
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
        ``weights`` (4: context lengths 0 to 3; one thread)."""

    @property
    def cache_weights(self) -> tuple[float, float, float, float] | None:
        """The document cache's weights fitted at training time (None: the model has none)."""

    def probabilities(self, prefix: Sequence[int]) -> npt.NDArray[np.float64]:
        """The scoring distribution after ``prefix``: one probability per symbol id, summing to 1."""

    def generation(
        self, prompt: Sequence[int], max_new_tokens: int, query: Query, sampling: Sampling, seed: int | None = None
    ) -> Generation:
        """Generation after ``prompt`` (ids as for :meth:`answer`). ``query`` gives the classifier (algorithm,
        k, vote, decay); its ``top_k`` is not used: the sampling decides how many classes each step keeps
        (1 when greedy, ``sampling.top_k`` when sampling)."""
    def classify_file(
        self, path: str | PathLike, output: str | PathLike | None, distribution: bool, query: Query
    ) -> dict[str, float | int | bool]: ...

def write_instances(
    tokens: np.ndarray, block_lengths: npt.NDArray[np.uint64], width: int, pad: int, path: str | PathLike
) -> None: ...
def write_shard(
    path: str | PathLike,
    tokens: np.ndarray,
    block_lengths: npt.NDArray[np.uint64],
    vocab_size: int,
    tokenizer: bytes,
    metadata: str,
) -> None: ...
def read_shard(path: str | PathLike) -> tuple[np.ndarray, npt.NDArray[np.uint64], int, bytes, str]: ...
