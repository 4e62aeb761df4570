"""The public :class:`Model`: a trained core model plus its tokenizer (or symbol table).

This is the only module that calls the core model's methods: training and loading create one and wrap it
here; evaluation, the command line and the benchmarks go through :class:`Model`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memlm import _core, checks
from memlm._core import UNKNOWN, CoreModel, Query
from memlm.checks import block_lengths as checked_lengths
from memlm.checks import not_an_input, output_file, token_ids
from memlm.corpus import split_blocks
from memlm.errors import MemlmError, ModelFormatError, TokenizerMismatchError
from memlm.explanation import Explanation, Neighbour
from memlm.generation import (
    GENERATE_CHUNKS,
    STREAM_CHUNKS,
    SymbolDecoder,
    TextDecoder,
    id_chunks,
    pieces,
    stop_list,
)
from memlm.provenance import Origins
from memlm.scoring import TokenScores, perplexities
from memlm.tokenization import TokenizerSpec

#: The ``algorithm`` of :meth:`Model.generate` that draws from the scoring distribution (Kneser-Ney, with
#: the document cache) instead of a classifier's answers.
KNESER_NEY = "kneser-ney"

#: Queries kept per model, one for each combination of predict's arguments seen (they are cheap, but
#: making one per call would cost as much as the lookup).
_QUERY_CACHE = 64


class Prediction(NamedTuple):
    """A classifier's answer for one context (immutable; a named tuple, cheap to make per token)."""

    #: Most frequent next tokens (ids, or symbol ids for instance-file models), most frequent first.
    ids: list[int]
    #: Their strings (decoded tokens, or symbols).
    tokens: list[str]
    #: Their votes: counts in the matched node (IGTree), or the neighbours' (weighted) votes.
    votes: list[float]
    #: Their vote shares: each vote divided by the sum of all votes (kept in ``ids`` or not). These are not
    #: the scoring distribution; :meth:`Model.probabilities` is.
    shares: list[float]
    #: Number of context positions matched (in feature-weight order) before any k-NN search.
    depth: int
    #: Distance: IGTree's summed weight of the unmatched positions, or the nearest neighbours' distance.
    distance: float

    @property
    def id(self) -> int:
        return self.ids[0]

    @property
    def token(self) -> str:
        return self.tokens[0]

    @property
    def probabilities(self) -> list[float]:
        """Deprecated name of :attr:`shares`."""
        warnings.warn(
            "Prediction.probabilities is deprecated: it holds vote shares, now called Prediction.shares "
            "(Model.probabilities gives the scoring distribution)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.shares


#: What a model without a provenance index says when asked for passages.
NO_PROVENANCE_INDEX = "this model has no provenance index: train it with `memlm train --provenance`"
#: The most passages :meth:`Model.explain` cites per token, and the most tokens it generates first.
MAX_EVIDENCE = 1_000
MAX_GENERATED = 100_000


class Model:
    """A memory-based language model. Create one with :func:`memlm.train` or :func:`memlm.load`."""

    def __init__(
        self,
        core: CoreModel,
        tokenizer: TokenizerSpec | None = None,
        path: str | Path | None = None,
        verify: bool = False,
    ):
        """``core``: what the core trained or opened (from ``path``); ``verify``: also make the checks of
        :meth:`verify` that the core does not (the metadata and the tokenizer section)."""
        self._core = core
        #: The file the model was loaded from (None for a model built in memory).
        self._path = None if path is None else Path(path)
        self._metadata = self._parse_metadata(core.metadata)
        self._tokenizer = tokenizer
        # Read once: each is a call into the core, and `predict` needs them on every call.
        self._width, self._pad, self._token_ids = core.width, core.pad, core.token_ids
        self._n_symbols = core.n_symbols
        self._feature_columns = tuple(core.feature_order)
        self._token_strings: dict[int, str] = {}
        self._queries: dict[tuple, Query] = {}
        # Read at the first explanation that cites passages.
        self._training_text: np.ndarray | None = None
        self._origins: Origins | None = None
        if verify:
            self._verify_sections()

    # -- identity ---------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Context width W: how many previous tokens the model looks at."""
        return self._width

    @property
    def pad_id(self) -> int:
        """The id that pads a context before a block's start: the tokenizer's vocabulary size for tokenizer
        models, 0 (the symbol ``_``) for models trained on an instance file."""
        return self._pad

    @property
    def n_ids(self) -> int:
        """How many ids the model knows, the padding id included (for tokenizer models the tokenizer's
        vocabulary size + 1): the length of :meth:`probabilities`; every id is below it."""
        return self._n_symbols

    @property
    def vocab_size(self) -> int:
        """Deprecated name of :attr:`n_ids` (which counts the padding id, unlike a tokenizer's vocab_size)."""
        warnings.warn(
            "Model.vocab_size is deprecated: use Model.n_ids (the ids the model knows, padding included)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._n_symbols

    @property
    def metadata(self) -> dict:
        return dict(self._metadata)

    @property
    def path(self) -> Path | None:
        """The file the model was loaded from; None for a model trained in this process."""
        return self._path

    def _where(self) -> str:
        return str(self._path) if self._path is not None else "the model"

    def _parse_metadata(self, text: str) -> dict:
        try:
            metadata = json.loads(text or "{}")
        except ValueError as e:
            raise ModelFormatError(f"{self._where()}: the metadata section is not JSON ({e})") from None
        if not isinstance(metadata, dict):
            raise ModelFormatError(f"{self._where()}: the metadata section is not a JSON object")
        return metadata

    @property
    def has_tokenizer(self) -> bool:
        return self._token_ids

    @property
    def tokenizer(self) -> TokenizerSpec:
        """The tokenizer stored in the model (read from the file on first use)."""
        if not self.has_tokenizer:
            raise MemlmError("this model was trained from an instance file: it has symbols, not a tokenizer")
        if self._tokenizer is None:
            self._tokenizer = self._stored_tokenizer()
        return self._tokenizer

    def _stored_tokenizer(self) -> TokenizerSpec:
        """The tokenizer section, once it decompressed, parsed as a tokenizer and matched its recorded hash;
        else a :class:`ModelFormatError` naming the file."""
        spec = TokenizerSpec.from_section(
            self._core.tokenizer_blob, str(self._metadata.get("tokenizer", "?")), self._where()
        )
        if spec.sha256 != self._metadata.get("tokenizer_sha256"):
            raise ModelFormatError(
                f"{self._where()}: the tokenizer stored in the model does not match the hash its metadata records"
            )
        return spec

    def check_tokenizer(self, tokenizer: TokenizerSpec) -> None:
        """Raises :class:`TokenizerMismatchError` unless ``tokenizer`` is the one the model was built with."""
        expected = self._metadata.get("tokenizer_sha256")
        if not self.has_tokenizer or tokenizer.sha256 != expected:
            raise TokenizerMismatchError(
                f"the model was built with tokenizer {self._metadata.get('tokenizer', 'none')!r} "
                f"(sha256 {str(expected)[:12]}), not with {tokenizer.name!r} (sha256 {tokenizer.sha256[:12]})"
            )
        self._tokenizer = tokenizer

    def info(self) -> dict:
        """What `memlm info` shows: sizes, weights and provenance."""
        core = self._core
        breakdown = dict(core.size_breakdown)
        return {
            "width": core.width,
            "training_instances": core.n_instances,
            "symbols": core.n_symbols,
            "nodes": core.n_nodes,
            "bytes": core.nbytes,
            "size_breakdown": breakdown,
            # The scoring distribution (docs/scoring.md): Kneser-Ney where the model stores its statistics.
            "scoring": "kneser_ney" if breakdown.get("kneser-ney") else "witten_bell",
            # Bytes per id of the stored texts (the Kneser-Ney text that the provenance index cites).
            "id_bytes": 2 if core.n_symbols <= 1 << 16 else 4,
            "weighting": core.weighting,
            "algorithms": list(_core.ALGORITHMS) if core.has_instance_base else ["igtree"],
            "feature_order": [core.width - f for f in core.feature_order],
            "gain_ratio": core.gain_ratio,
            "info_gain": core.info_gain,
            "tokenizer": self._metadata.get("tokenizer"),
            "tokenizer_sha256": self._metadata.get("tokenizer_sha256"),
            "metadata": self._metadata,
        }

    def partition_sizes(self, ends: list[int]) -> dict:
        """What the model holds under each range of nearest-token ids ``[0, ends[0])``, ``[ends[0], ends[1])``,
        ... (the last end :attr:`n_ids`): the bytes of the IGTree's and of the Kneser-Ney statistics' subtrees
        under it, and the bytes every range needs (``shared``: the roots, the training-text copy, tokenizer,
        ...). An IGTree answer and a scoring probability read only the shared parts and the subtree of the
        context's nearest token: what one machine would hold when a model too large for one is served in
        partitions by nearest token, a router in front (docs/cluster.md)."""
        ends = list(ends)
        if not all(checks.whole(end) and 0 < end <= self.n_ids for end in ends):
            shown = ", ".join(checks.shown(end) for end in ends)
            raise MemlmError(f"the ranges' ends must be whole numbers from 1 to {self.n_ids}, got [{shown}]")
        igtree, kneser_ney, shared = self._core.partition_sizes([int(end) for end in ends])
        return {"igtree_bytes": igtree, "kneser_ney_bytes": kneser_ney, "shared_bytes": shared}

    def verify(self) -> None:
        """Checks every checksum and structural invariant, that the metadata is JSON and that the tokenizer
        section decompresses and parses as the tokenizer its metadata names; raises
        :class:`ModelFormatError` if one fails."""
        self._core.verify()
        self._verify_sections()

    def _verify_sections(self) -> None:
        """The checks of :meth:`verify` that the core cannot make: the metadata is a JSON object, and the
        tokenizer section (tokenizer models) decompresses and parses as the tokenizer its metadata names."""
        self._metadata = self._parse_metadata(self._core.metadata)
        if self.has_tokenizer:
            self._tokenizer = self._stored_tokenizer()
        if self.has_provenance:
            self.origins()  # read and checked against the training text

    def _check_origins(self, origins: Origins) -> None:
        """Checks provenance origins against the training text: one block each, whose tokens spell as many
        bytes as the origins say, its line joins inside it (a :class:`ModelFormatError` otherwise)."""
        text = self.training_text()
        starts = np.flatnonzero(text == self._pad)
        lengths = np.diff(np.append(starts, text.size)) - 1
        tokens = np.delete(text, starts)
        try:
            from memlm.training import check_spelled

            check_spelled(tokens, lengths.astype(np.uint64), self.tokenizer, origins.block_bytes)
            origins.check_joins()
        except (MemlmError, ValueError) as e:
            raise ModelFormatError(f"{self._where()}: damaged provenance origins ({e})") from None

    def save(self, path: str | Path) -> None:
        """Writes the model file atomically (self-contained: the tokenizer is inside)."""
        self._core.save(path)

    def training_tokens(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(token ids, block lengths) of the training text, if the model kept them (``keep_tokens``)."""
        return self._core.training_tokens()

    # -- contexts ---------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Text to ids: tokens for tokenizer models, whitespace-separated symbols for instance models
        (an unknown symbol gets an id that matches nothing)."""
        if self.has_tokenizer:
            return self.tokenizer.encode(text)
        symbol_id = self._core.symbol_id
        return [symbol_id(s) for s in checks.text(text).split()]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ids: decoded tokens, or symbols separated by spaces (instance-file models). The unknown
        id (:data:`memlm._core.UNKNOWN`, a symbol the model never saw) has no text: an error, as any id
        the model does not know."""
        ids = checks.prefix_ids(ids.tolist() if isinstance(ids, np.ndarray) else list(ids), self._n_symbols)
        if UNKNOWN in ids:
            raise MemlmError(f"id {UNKNOWN} is the unknown id (a symbol the model never saw): it has no text")
        if self.has_tokenizer:
            return self.tokenizer.decode(ids)
        return " ".join(self._core.symbol(i) for i in ids)

    def token_string(self, token_id: int) -> str:
        """The text of one token (or symbol), decoded once and then remembered."""
        text = self._token_strings.get(token_id)
        if text is None:
            text = self._token_strings[token_id] = self.decode([token_id])
        return text

    def _class_string(self, class_id: int) -> str:
        """:meth:`token_string` for an id the core answered with (known valid: decoded unchecked)."""
        text = self._token_strings.get(class_id)
        if text is None:
            decoded = self.tokenizer.decode([class_id]) if self.has_tokenizer else self._core.symbol(class_id)
            text = self._token_strings[class_id] = decoded
        return text

    def context(self, text_or_ids: str | Sequence[int]) -> list[int]:
        """The model's view of a prefix: its last W ids, left-padded (a shorter prefix starts a block)."""
        ids = np.array(checks.prefix_ids(self._tail(text_or_ids), self._n_symbols), dtype=np.uint32)
        # The context of a target after the prefix, in the core's windowing (0 stands for the target).
        contexts, _ = self._core.windows(np.append(ids, np.uint32(0)), np.array([ids.size + 1], dtype=np.uint64))
        return contexts[-1].tolist()

    def windows(
        self, blocks: Iterable[str] | str | None = None, *, tokens=None, block_lengths=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(contexts (n, W), targets (n,)) of every token of every block: each context the W ids before its
        target in the same block, left-padded at the block's start; the form :meth:`predict_batch` and
        :meth:`score_windows` take.

        The blocks are texts (each encoded on its own; one string is one block), or token ids: ``tokens``
        (all blocks concatenated) with ``block_lengths``.
        """
        if blocks is not None:
            if tokens is not None or block_lengths is not None:
                raise MemlmError("give either text blocks or tokens with block_lengths, not both")
            one = isinstance(blocks, (str, bytes, bytearray, memoryview)) or not isinstance(blocks, Iterable)
            blocks = [blocks] if one else list(blocks)
            tokens, block_lengths = self._encode_blocks([checks.text(block, "a block") for block in blocks])
        elif tokens is None or block_lengths is None:
            raise MemlmError("give text blocks, or tokens with block_lengths")
        else:
            tokens = self._ids(tokens, "tokens", 1)
            block_lengths = checked_lengths(block_lengths)
        return self._core.windows(tokens, block_lengths)

    def _ids(self, values, what: str, ndim: int) -> np.ndarray:
        """Ids as the core takes them (uint32), once known to be the model's (or the unknown id)."""
        return token_ids(values, what, self._n_symbols, ndim)

    def _encode_blocks(self, blocks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self.has_tokenizer:
            return self.tokenizer.encode_blocks(blocks)
        encoded = [self.encode(block) for block in blocks]
        lengths = np.array([len(ids) for ids in encoded if ids], dtype=np.uint64)
        return np.array([i for ids in encoded for i in ids], dtype=np.uint32), lengths

    def _tail(self, text_or_ids: str | Sequence[int]) -> list[int]:
        """The ids of a prefix that count: at most its last W (the core pads a shorter one). Text is encoded
        here; ids (a list, a tuple, a 1-D array) are handed to the binding as a list of Python ints, which
        checks each as it reads it: an int of the model's vocabulary (or the unknown id), never coerced."""
        if type(text_or_ids) is list:
            return text_or_ids if len(text_or_ids) <= self._width else text_or_ids[-self._width :]
        if isinstance(text_or_ids, str):
            ids = self.encode(text_or_ids)
            return ids if len(ids) <= self._width else ids[-self._width :]
        if isinstance(text_or_ids, np.ndarray) and text_or_ids.ndim:
            return text_or_ids[-self._width :].tolist()  # numpy scalars become ints, shown as such in errors
        if isinstance(text_or_ids, (bytes, bytearray, memoryview)):
            raise MemlmError("give text as str (decode the bytes first) or token ids as a list or array, not bytes")
        if not isinstance(text_or_ids, Sequence):
            kind = type(text_or_ids).__name__
            raise MemlmError(f"give text as str or token ids as a list or array, got {kind}")
        return list(text_or_ids)[-self._width :]

    def _query(self, top_k: int, algorithm: str, k: int, vote: str, decay: float) -> Query:
        """The core's query for these arguments: checked (:func:`memlm.checks.query`) and made once, then
        taken from the cache. The key holds the types of the numbers, since True == 1 == 1.0 (a bool or a
        float where a count goes must be refused, not answered as the query of an equal int)."""
        key = (top_k, type(top_k), algorithm, k, type(k), vote, decay, type(decay))
        try:
            return self._queries[key]
        except (KeyError, TypeError):  # not made yet, or an argument that cannot be a key (a list)
            query = checks.query(top_k, algorithm, k, vote, decay)  # refuses what cannot be a key
        if len(self._queries) >= _QUERY_CACHE:
            self._queries.clear()
        self._queries[key] = query
        return query

    # -- prediction -------------------------------------------------------------------------------

    def predict(
        self,
        text_or_ids: str | Sequence[int],
        top_k: int = 5,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
    ) -> Prediction:
        """The next-token prediction after ``text_or_ids`` (text, or ids ending where the target starts):
        the ``top_k`` best classes (all when 0).

        ``algorithm``: ``igtree`` (default), ``tribl2`` or ``ib1`` (these two need a model trained with
        them); ``k`` nearest distances and the ``vote`` (``majority``, ``inverse_distance``,
        ``exponential_decay`` with ``decay``) apply to the k-NN algorithms.
        """
        query = self._query(top_k, algorithm, k, vote, decay)
        answer = self._core.answer(self._tail(text_or_ids), query)
        classes, votes, total = answer.classes, answer.votes, answer.total
        class_string = self._class_string
        tokens = [class_string(c) for c in classes]
        return Prediction(classes, tokens, votes, _shares(votes, total), answer.depth, answer.distance)

    def check_query(self, algorithm: str = "igtree", k: int = 1, vote: str = "majority", decay: float = 1.0) -> None:
        """Raises :class:`MemlmError` unless the model can answer with these arguments (as in :meth:`predict`):
        known names, valid numbers, and the instance base stored for a k-NN algorithm."""
        query = self._query(1, algorithm, k, vote, decay)
        self._core.answer_batch(np.zeros((0, self._width), dtype=np.uint32), query, totals=False)

    def predict_batch(
        self,
        contexts: np.ndarray,
        top_k: int = 1,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Predictions for an (n, W) array of ids (e.g. from :meth:`windows`) on all cores, without the GIL.

        Returns (classes (n, top_k), votes (n, top_k), depth (n,), distance (n,)); classes is -1 where
        fewer than ``top_k`` classes got votes; ``top_k`` 0 keeps one class here, and one larger than the
        number of classes keeps them all. ``k``, ``vote``, ``decay`` as in :meth:`predict`.
        """
        query = self._query(top_k, algorithm, k, vote, decay)
        contexts = self._ids(contexts, "contexts", 2)
        classes, votes, _totals, depth, distance = self._core.answer_batch(contexts, query, totals=False)
        return classes, votes, depth, distance

    def votes(
        self,
        text_or_ids: str | Sequence[int],
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every class that got votes after ``text_or_ids`` and its votes: (ids, votes), the winner first.
        Arguments as in :meth:`predict`."""
        query = self._query(0, algorithm, k, vote, decay)
        answer = self._core.answer(self._tail(text_or_ids), query)
        return np.asarray(answer.classes, dtype=np.int64), np.asarray(answer.votes, dtype=np.float64)

    def distribution(self, text_or_ids: str | Sequence[int], algorithm: str = "igtree", **knn):
        """Deprecated name of :meth:`votes`."""
        warnings.warn(
            "Model.distribution is deprecated: use Model.votes (it gives votes; Model.probabilities gives the "
            "scoring distribution)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.votes(text_or_ids, algorithm, **knn)

    def classify_file(
        self,
        instances: str | Path,
        output: str | Path | None = None,
        distribution: bool = False,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
    ) -> dict:
        """Classifies a TiMBL column-format instance file and writes TiMBL's ``-o`` layout to ``output``
        (atomically; standard output when None): each instance followed by the predicted class, with
        ``distribution`` also the classes' votes in braces. Returns the totals: ``instances``, ``correct``,
        ``has_classes`` (whether the file gave classes to compare with) and ``seconds`` (classifying)."""
        self.check_query(algorithm, k, vote, decay)  # before the file is read or the output made
        query = self._query(0 if checks.flag(distribution, "distribution") else 1, algorithm, k, vote, decay)
        if output is not None:
            output = output_file(output)
            not_an_input(output, [instances, self._path])
        return self._core.classify_file(instances, output, distribution, query)

    # -- scoring ----------------------------------------------------------------------------------

    def probabilities(self, text_or_ids: str | Sequence[int]) -> np.ndarray:
        """The scoring distribution after ``text_or_ids``: a probability for every id (padding at 0),
        summing to 1: interpolated modified Kneser-Ney over every training context up to W (models trained
        from instance files: Witten-Bell back-off along the IGTree path). See docs/scoring.md. It is the
        model's alone: the document cache of :meth:`score` needs a whole document, not a context."""
        return self._core.probabilities(self._tail(text_or_ids))

    def most_probable(self, contexts: np.ndarray) -> np.ndarray:
        """The id the scoring distribution (:meth:`probabilities`, without the document cache) rates most
        probable after each context (n, W) (ties: the lower id), found without computing every
        probability. A model trained from an instance file (Witten-Bell scoring) has none: a
        :class:`MemlmError` (``info()["scoring"]`` says which a model has)."""
        best = self._core.most_probable_batch(self._ids(contexts, "contexts", 2))
        if best is None:
            raise MemlmError("this model has no Kneser-Ney statistics (it was trained from an instance file)")
        return best

    def score_windows(
        self, contexts: np.ndarray, targets: np.ndarray, cache: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log10 probabilities, matched context lengths, OOV flags) of ``targets`` (n,) after ``contexts``
        (n, W) under the scoring distribution; a target is OOV when it never was one in training. With
        ``cache`` (and a model whose training fitted the document cache, :attr:`cache_weights`), the
        windows are one document in order, and each token is also scored by the tokens before it
        (docs/scoring.md): the model's probabilities on all cores, the cache then on one."""
        contexts, targets = self._ids(contexts, "contexts", 2), self._ids(targets, "targets", 1)
        weights = self._core.cache_weights if checks.flag(cache, "cache") else None
        if weights is None:
            return self._core.score_batch(contexts, targets)
        return self._core.score_document(contexts, targets, weights)

    @property
    def cache_weights(self) -> tuple[float, ...] | None:
        """The document cache's weights per context length 0 to 3, fitted at training time on held-out
        training blocks (None for models without them: instance-file models, tiny corpora)."""
        return self._core.cache_weights

    def score(self, text: str, cache: bool = True) -> TokenScores:
        """Per-token (log10 probability, matched context length, OOV flag) of ``text``, KenLM style: a
        sequence of :class:`TokenScore`, whose arrays (``log10_probs``, ...) hold them all (the text is
        split into blocks at blank lines, each scored from its start; with ``cache`` the text is one
        document for the document cache). For a model trained on an instance file, the tokens are the
        text's whitespace-separated symbols; one the model never saw is out of vocabulary (its id
        :data:`memlm._core.UNKNOWN`)."""
        blocks = split_blocks(checks.text(text))
        contexts, targets = self.windows(blocks)
        log10, depth, oov = self.score_windows(contexts, targets, cache=cache)
        if self.has_tokenizer:
            token_string = self.token_string
            return TokenScores(targets, log10, depth, oov, lambda i: token_string(int(targets[i])))
        symbols = " ".join(blocks).split()
        if len(symbols) != targets.size:
            raise MemlmError(f"internal error: {len(symbols)} symbols but {targets.size} scores")
        return TokenScores(targets, log10, depth, oov, symbols.__getitem__)

    def perplexity(self, text: str, cache: bool = True) -> dict:
        """Perplexity of ``text``, with and without OOV tokens, as KenLM reports them (``cache``: with the
        document cache, as :meth:`score`)."""
        contexts, targets = self.windows(split_blocks(checks.text(text)))
        log10, _, oov = self.score_windows(contexts, targets, cache=cache)
        return {"tokens": int(targets.size), **perplexities(log10, oov)}

    # -- explanation ------------------------------------------------------------------------------

    @property
    def feature_columns(self) -> list[int]:
        """The context columns (0 the oldest of W, W - 1 the nearest token) in the order the IGTree matches
        them (``info()["feature_order"]`` gives the same as distances back: W - column)."""
        return list(self._feature_columns)

    @property
    def has_provenance(self) -> bool:
        """Whether the model has a provenance index (``memlm train --provenance``): :meth:`explain` then
        cites training passages."""
        return self._core.has_provenance

    def explain(
        self,
        text: str,
        algorithm: str = "igtree",
        evidence: int = 3,
        generate: int = 0,
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
        cache: bool = True,
    ) -> list[Explanation]:
        """Why each token of ``text``: one :class:`memlm.explanation.Explanation` per token (the matched
        context, the answer of ``algorithm`` and its counts, the scoring probability of the token with the
        document ``cache`` or not, and up to ``evidence`` training passages when the model has a provenance
        index). ``generate``: first append that many greedily generated tokens (with ``algorithm``) and
        explain them too: the text is then one block, tokenised as generation reads a prompt. ``k``,
        ``vote``, ``decay`` as in :meth:`predict`."""
        from memlm.explaining import explain_tokens

        text = checks.text(text)
        evidence = checks.amount(evidence, "evidence", MAX_EVIDENCE)
        generate = checks.amount(generate, "generate", MAX_GENERATED)
        cache = checks.flag(cache, "cache")
        self.check_query(algorithm, k, vote, decay)
        if generate:
            ids = self.encode(text)
            ids += self.generate_ids(ids, generate, algorithm=algorithm, k=k, vote=vote, decay=decay)
            tokens, lengths = np.asarray(ids, np.uint32), np.array([len(ids)] if ids else [], np.uint64)
        else:
            tokens, lengths = self._encode_blocks(split_blocks(text))
        return explain_tokens(self, tokens, lengths, algorithm, evidence, k, vote, decay, cache)

    def neighbours(
        self,
        text_or_ids: str | Sequence[int],
        algorithm: str = "ib1",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
        most: int = 10,
    ) -> list[Neighbour]:
        """The nearest neighbours behind the k-NN answer (``algorithm`` ``tribl2`` or ``ib1``; arguments as
        in :meth:`predict`) after ``text_or_ids``: up to ``most``, nearest first."""
        query = self._query(1, algorithm, k, vote, decay)
        most = checks.amount(most, "most", MAX_EVIDENCE)
        found = self._core.neighbours(self._tail(text_or_ids), query, most)
        return [
            Neighbour(distance, [None if v < 0 else v for v in values], dict(counts))
            for distance, values, counts in found
        ]

    def occurrences(self, token: int, context: Sequence[int], depth: int, count: int) -> tuple[int, list[int]]:
        """(how many, up to ``count`` of their positions in :meth:`training_text`) of the training tokens
        ``token`` whose context matches ``context`` (W ids) to ``depth`` positions in feature order."""
        token = checks.amount(token, "token", self._n_symbols - 1)
        depth = checks.amount(depth, "depth", self._width)
        count = checks.amount(count, "count", MAX_EVIDENCE)
        found = self._core.occurrences(token, context, depth, count)
        if found is None:
            raise MemlmError(NO_PROVENANCE_INDEX)
        return found

    def training_text(self) -> np.ndarray:
        """The training text the Kneser-Ney statistics keep (a copy, read once): every block's ids, each block
        preceded by the padding id; what the provenance index's positions point into."""
        if self._training_text is None:
            text = self._core.training_text()
            if text is None:
                raise MemlmError("this model keeps no training text (it was trained from an instance file)")
            self._training_text = text
        return self._training_text

    def origins(self) -> Origins:
        """Where each training block came from (models with a provenance index; read and checked against
        the training text once)."""
        if self._origins is None:
            data = self._core.provenance_origins()
            if data is None:
                raise MemlmError(NO_PROVENANCE_INDEX)
            origins = Origins.from_bytes(data, self._where())
            self._check_origins(origins)
            self._origins = origins
        return self._origins

    # -- generation -------------------------------------------------------------------------------

    def stream(
        self,
        prompt: str = "",
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | str | None = None,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
        cache: bool = False,
    ) -> Iterator[str]:
        """Generates text after ``prompt``, yielding it piece by piece as tokens come.

        Greedy unless ``do_sample``, then sampled with Hugging Face's ``temperature``, ``top_k`` (0: all
        classes) and ``top_p``, from a generator seeded with ``seed`` (repeatable) or, when None, from the
        system. The text ends before the first ``stop`` string. ``algorithm``, ``k``, ``vote``, ``decay`` as
        in :meth:`predict`, or ``algorithm="kneser-ney"``: each token from the scoring distribution
        (:meth:`probabilities`; greedy takes its most probable token), with ``cache`` the document cache
        over the prompt and the text generated so far interpolated as in :meth:`score` (off by default:
        docs/scoring.md says why). Every argument is checked when this is called, before the first piece.
        """
        arguments = (prompt, max_new_tokens, do_sample, temperature, top_k, top_p, seed, stop, algorithm, k, vote)
        return self._generate(*arguments, decay, cache, True)

    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | str | None = None,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
        cache: bool = False,
    ) -> str:
        """The text generated after ``prompt`` (greedy unless ``do_sample=True``); see :meth:`stream`."""
        arguments = (prompt, max_new_tokens, do_sample, temperature, top_k, top_p, seed, stop, algorithm, k, vote)
        return "".join(self._generate(*arguments, decay, cache, False))

    def stream_ids(
        self,
        prompt: str | Sequence[int] = "",
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 1.0,
        seed: int | None = None,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
        cache: bool = False,
    ) -> Iterator[list[int]]:
        """The ids :meth:`stream` generates after ``prompt`` (text, or its token ids: a list, tuple or 1-D
        array, read as one block; the ids that count are checked as :meth:`predict` checks them), in chunks
        as they come: not decoded (:meth:`decode` gives their text) and not cut at stop strings. Arguments
        as in :meth:`stream`, checked when this is called."""
        arguments = (max_new_tokens, do_sample, temperature, top_k, top_p, seed, None, algorithm, k, vote, decay)
        generation, total, _ = self._generation(lambda: self._prompt_ids(prompt), *arguments, cache)
        return id_chunks(generation.next_ids, total, STREAM_CHUNKS)

    def generate_ids(
        self,
        prompt: str | Sequence[int] = "",
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 1.0,
        seed: int | None = None,
        algorithm: str = "igtree",
        k: int = 1,
        vote: str = "majority",
        decay: float = 1.0,
        cache: bool = False,
    ) -> list[int]:
        """All the ids :meth:`stream_ids` gives, at once (asked of the core in larger chunks, as
        :meth:`generate` asks)."""
        arguments = (max_new_tokens, do_sample, temperature, top_k, top_p, seed, None, algorithm, k, vote, decay)
        generation, total, _ = self._generation(lambda: self._prompt_ids(prompt), *arguments, cache)
        return [i for chunk in id_chunks(generation.next_ids, total, GENERATE_CHUNKS) for i in chunk]

    def _prompt_ids(self, prompt: str | Sequence[int]) -> list[int]:
        """The ids of a prompt given as text (encoded) or as ids (a list of them, checked by the core as it
        reads the ones that count, as :meth:`_tail`'s)."""
        if isinstance(prompt, str):
            return self.encode(checks.text(prompt, "the prompt"))
        if isinstance(prompt, np.ndarray) and prompt.ndim == 1:
            return prompt.tolist()
        if isinstance(prompt, (bytes, bytearray, memoryview)) or not isinstance(prompt, Sequence):
            raise MemlmError(f"give the prompt as str or as token ids (a list or array), got {type(prompt).__name__}")
        return list(prompt)

    def _generate(
        self,
        prompt: str,
        max_new_tokens: int,
        do_sample: bool,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int | None,
        stop: Sequence[str] | str | None,
        algorithm: str,
        k: int,
        vote: str,
        decay: float,
        cache: bool,
        streaming: bool,
    ) -> Iterator[str]:
        arguments = (max_new_tokens, do_sample, temperature, top_k, top_p, seed, stop, algorithm, k, vote, decay)
        encoded = lambda: self.encode(checks.text(prompt, "the prompt"))  # noqa: E731 (made after the checks)
        generation, max_new_tokens, stops = self._generation(encoded, *arguments, cache)
        decoder = TextDecoder(self.tokenizer.decode) if self.has_tokenizer else SymbolDecoder(self.token_string)
        chunks = STREAM_CHUNKS if streaming else GENERATE_CHUNKS
        return pieces(generation.next_ids, max_new_tokens, decoder, stops, chunks)

    def _generation(
        self,
        prompt_ids: Callable[[], list[int]],
        max_new_tokens: int,
        do_sample: bool,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int | None,
        stop: Sequence[str] | str | None,
        algorithm: str,
        k: int,
        vote: str,
        decay: float,
        cache: bool,
    ):
        """(the core's generation, the checked ``max_new_tokens``, the stop strings), every argument checked
        first, then the prompt's ids made (``prompt_ids()``)."""
        max_new_tokens = checks.unsigned_64(max_new_tokens, "max_new_tokens")
        seed = None if seed is None else checks.unsigned_64(seed, "seed")
        sampling = checks.sampling(do_sample, temperature, top_k, top_p)
        cache = checks.flag(cache, "cache")
        scoring = algorithm == KNESER_NEY
        if isinstance(algorithm, str) and not scoring and algorithm not in _core.ALGORITHMS:
            names = ", ".join(repr(a) for a in (*_core.ALGORITHMS, KNESER_NEY))
            raise MemlmError(f"unknown algorithm {algorithm!r}: use one of {names}")
        if cache and not scoring:
            raise MemlmError(f"cache applies to algorithm={KNESER_NEY!r} only (a classifier has no document cache)")
        if cache and self._core.cache_weights is None:
            raise MemlmError("this model has no document cache (trained from an instance file or too little text)")
        # Greedy decoding needs the winner only; sampling the classes it samples among (all for top_k=0).
        # (k, vote and decay are checked whatever the algorithm: a value that does not apply must be valid.)
        query = self._query(top_k if sampling.do_sample else 1, "igtree" if scoring else algorithm, k, vote, decay)
        stops = stop_list(stop)
        ids = prompt_ids()
        if scoring:  # every id counts here
            weights = self._core.cache_weights if cache else None
            array = self._ids(ids, "the prompt", 1)
            generation = self._core.scoring_generation(array, max_new_tokens, sampling, seed, weights)
        else:
            generation = self._core.generation(ids, max_new_tokens, query, sampling, seed)
        return generation, max_new_tokens, stops


def _shares(votes: list[float], total: float) -> list[float]:
    """Each vote's share of the total (positive whenever there are votes: the core floors exponential-decay
    votes, which would underflow to 0 for far neighbours)."""
    return [v / total for v in votes]
