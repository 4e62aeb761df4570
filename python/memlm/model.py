"""The public :class:`Model`: a trained core model plus its tokenizer (or symbol table)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memlm._core import CoreModel
from memlm.errors import MemlmError, TokenizerMismatchError
from memlm.generation import SamplingConfig, choose
from memlm.tokenization import TokenizerSpec


class Prediction(NamedTuple):
    """A classifier's answer for one context (immutable; a named tuple, cheap to make per token)."""

    #: Most frequent next tokens (ids, or symbol ids for instance-file models), most frequent first.
    ids: list[int]
    #: Their strings (decoded tokens, or symbols).
    tokens: list[str]
    #: Their votes: counts in the matched node (IGTree), or the neighbours' (weighted) votes.
    votes: list[float]
    #: Their share of all votes.
    probabilities: list[float]
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


class Model:
    """A memory-based language model. Create one with :func:`memlm.train` or :func:`memlm.load`."""

    def __init__(self, core: CoreModel, tokenizer: TokenizerSpec | None = None):
        self._core = core
        self._metadata = json.loads(core.metadata or "{}")
        self._tokenizer = tokenizer
        # Read once: each is a call into the core, and `predict` needs them on every call.
        self._width, self._pad, self._token_ids = core.width, core.pad, core.token_ids
        self._token_strings: dict[int, str] = {}

    # -- identity ---------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Context width W: how many previous tokens the model looks at."""
        return self._width

    @property
    def metadata(self) -> dict:
        return dict(self._metadata)

    @property
    def has_tokenizer(self) -> bool:
        return self._token_ids

    @property
    def tokenizer(self) -> TokenizerSpec:
        """The tokenizer stored in the model (read from the file on first use)."""
        if not self.has_tokenizer:
            raise MemlmError("this model was trained from an instance file: it has symbols, not a tokenizer")
        if self._tokenizer is None:
            spec = TokenizerSpec.from_blob(self._core.tokenizer_blob, self._metadata.get("tokenizer", "?"))
            if spec.sha256 != self._metadata.get("tokenizer_sha256"):
                raise MemlmError("the tokenizer stored in the model does not match its recorded hash")
            self._tokenizer = spec
        return self._tokenizer

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
        return {
            "width": core.width,
            "training_instances": core.n_instances,
            "symbols": core.n_symbols,
            "nodes": core.n_nodes,
            "bytes": core.nbytes,
            "size_breakdown": dict(core.size_breakdown),
            "weighting": core.weighting,
            "algorithms": ["igtree", "tribl2", "ib1"] if core.has_instance_base else ["igtree"],
            "feature_order": [core.width - f for f in core.feature_order],
            "gain_ratio": core.gain_ratio,
            "info_gain": core.info_gain,
            "tokenizer": self._metadata.get("tokenizer"),
            "tokenizer_sha256": self._metadata.get("tokenizer_sha256"),
            "metadata": self._metadata,
        }

    def verify(self) -> None:
        """Checks every checksum and structural invariant; raises :class:`ModelFormatError` if one fails."""
        self._core.verify()

    def save(self, path: str | Path) -> None:
        """Writes the model file atomically (self-contained: the tokenizer is inside)."""
        self._core.save(Path(path))

    # -- contexts ---------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Text to ids: tokens for tokenizer models, whitespace-separated symbols for instance models."""
        if self.has_tokenizer:
            return self.tokenizer.encode(text)
        return [self._symbol_id(s) for s in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        if self.has_tokenizer:
            return self.tokenizer.decode(list(ids))
        return " ".join(self._core.symbol(i) for i in ids)

    def _symbol_id(self, symbol: str) -> int:
        found = self._core.symbol_id(symbol)
        # Unknown symbols match nothing: the id past the table never labels an arc.
        return found if found is not None else 0xFFFFFFFF

    def context(self, text_or_ids: str | Sequence[int]) -> list[int]:
        """The model's view of a prefix: its last W ids, left-padded (a shorter prefix starts a block)."""
        ids = self.encode(text_or_ids) if isinstance(text_or_ids, str) else text_or_ids
        tail = list(ids[-self._width :]) if len(ids) else []
        return [self._pad] * (self._width - len(tail)) + tail

    def _tail(self, text_or_ids: str | Sequence[int]) -> list[int]:
        """At most the last W ids of a prefix, unpadded (the core pads them, as :meth:`context` does)."""
        ids = self.encode(text_or_ids) if isinstance(text_or_ids, str) else text_or_ids
        if type(ids) is list and len(ids) <= self._width:
            return ids  # the common case of `predict`, passed on without a copy
        return list(ids[-self._width :]) if len(ids) else []

    def token_string(self, token_id: int) -> str:
        """The text of one token (or symbol), decoded once and then remembered."""
        text = self._token_strings.get(token_id)
        if text is None:
            text = self._token_strings[token_id] = self.decode([token_id])
        return text

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
        """The next-token prediction after ``text_or_ids`` (text, or ids ending where the target starts).

        ``algorithm``: ``igtree`` (default), ``tribl2`` or ``ib1`` (these two need a model trained with
        them); ``k`` nearest distances and the ``vote`` (``majority``, ``inverse_distance``,
        ``exponential_decay`` with ``decay``) apply to the k-NN algorithms.
        """
        classes, votes, probabilities, depth, distance = self._core.predict(
            self._tail(text_or_ids), top_k, algorithm, k, vote, decay
        )
        token_string = self.token_string
        return Prediction(classes, [token_string(c) for c in classes], votes, probabilities, depth, distance)

    def predict_batch(self, contexts: np.ndarray, top_k: int = 1, algorithm: str = "igtree", **knn):
        """Predictions for an (n, W) array of ids on all cores, without the GIL.

        Returns (classes (n, top_k), votes (n, top_k), depth (n,), distance (n,)); classes is -1 where
        fewer than ``top_k`` classes got votes. ``knn``: ``k``, ``vote``, ``decay`` as in :meth:`predict`.
        """
        contexts = np.ascontiguousarray(contexts, dtype=np.uint32)
        if contexts.ndim != 2:
            raise MemlmError(f"contexts must be a 2-D array (n, {self.width}), got {contexts.ndim} dimensions")
        return self._core.predict_batch(contexts, top_k, algorithm, **knn)

    def probabilities(self, text_or_ids: str | Sequence[int]) -> np.ndarray:
        """The scoring distribution after ``text_or_ids``: a probability for every id (padding at 0),
        summing to 1 (interpolated Witten-Bell back-off along the IGTree path, see `memlm.evaluation`)."""
        return self._core.scoring_distribution(self.context(text_or_ids))

    def score(self, text: str):
        """Per-token (log10 probability, matched context length, OOV flag), KenLM style."""
        from memlm.evaluation import score

        return score(self, text)

    def perplexity(self, text: str) -> dict:
        """Perplexity of ``text``, with and without OOV tokens."""
        from memlm.evaluation import perplexity

        return perplexity(self, text)

    def distribution(self, text_or_ids: str | Sequence[int], algorithm: str = "igtree", **knn):
        """Every class that got votes: (ids, votes), the winner first."""
        classes, votes, _, _, _ = self._core.predict(self._tail(text_or_ids), 0, algorithm, **knn)
        return np.asarray(classes, dtype=np.int64), np.asarray(votes, dtype=np.float64)

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
        **knn,
    ) -> Iterator[str]:
        """Generates text after ``prompt``, yielding it piece by piece as tokens come.

        Greedy unless ``do_sample``; ``algorithm`` and ``knn`` (``k``, ``vote``, ``decay``) as in
        :meth:`predict`.
        """
        if max_new_tokens < 0:
            raise MemlmError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        config = SamplingConfig(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        rng = np.random.default_rng(seed)
        ids = self.encode(prompt)
        generated: list[int] = []
        emitted = ""
        for _ in range(max_new_tokens):
            classes, counts = self.distribution(ids + generated, algorithm, **knn)
            generated.append(choose(classes, counts, config, rng))
            text = self._join(generated)
            cut = _first_stop(text, stops)
            if cut is not None:
                yield text[len(emitted) : cut]
                return
            # Hold back an incomplete UTF-8 sequence until the token that completes it.
            if text.endswith("\ufffd"):
                continue
            if len(text) > len(emitted):
                yield text[len(emitted) :]
                emitted = text
        text = self._join(generated)
        if len(text) > len(emitted):
            yield text[len(emitted) :]

    def _join(self, generated: list[int]) -> str:
        text = self.decode(generated)
        return text if self.has_tokenizer or not text else " " + text

    def generate(self, prompt: str = "", max_new_tokens: int = 20, **kwargs) -> str:
        """The text generated after ``prompt`` (greedy unless ``do_sample=True``); see :meth:`stream`."""
        return "".join(self.stream(prompt, max_new_tokens=max_new_tokens, **kwargs))


def _first_stop(text: str, stops: list[str]) -> int | None:
    positions = [text.find(s) for s in stops if s and s in text]
    return min(positions) if positions else None
