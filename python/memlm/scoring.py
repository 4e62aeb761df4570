"""What scores are reported as: per-token scores (KenLM style) and perplexities.

The probabilities themselves come from the core's scoring distribution (interpolated modified Kneser-Ney
over every context up to W; Witten-Bell along the IGTree path for models trained from instance files):
:meth:`memlm.Model.probabilities` gives it whole, :meth:`memlm.Model.score_windows` for many (context,
target) pairs at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from memlm.errors import MemlmError


@dataclass(frozen=True)
class TokenScore:
    """One token's score, as KenLM reports it."""

    token: str
    id: int
    #: log10 probability under the scoring distribution (docs/scoring.md).
    log10_prob: float
    #: Context tokens matched (the block start included): the longest context seen in training.
    context_length: int
    #: Whether the token never occurred as a target in training.
    oov: bool


class TokenScores(Sequence[TokenScore]):
    """The scores of a text's tokens: a sequence of :class:`TokenScore` made on access, over arrays that
    hold them all (``ids``, ``log10_probs``, ``context_lengths``, ``oov``), so that scoring a long text
    builds no Python object per token. It indexes, slices, iterates, compares and pickles like a list of
    them; ``list(scores)`` makes that list (for ``+``, ``append``, ``sort``)."""

    def __init__(
        self,
        ids: np.ndarray,
        log10_probs: np.ndarray,
        context_lengths: np.ndarray,
        oov: np.ndarray,
        token_text: Callable[[int], str],
        positions: range | None = None,
    ) -> None:
        #: Token ids, in text order (:data:`memlm._core.UNKNOWN` for a symbol an instance model never saw).
        self.ids = ids
        #: log10 probability of each token.
        self.log10_probs = log10_probs
        #: Context tokens matched by each (the block start included).
        self.context_lengths = context_lengths
        #: Whether each token never occurred as a target in training.
        self.oov = oov
        self._token_text = token_text  # the text of the token at a position of the scored text
        #: Where each token stands in the scored text (a slice keeps the positions of its tokens).
        self._positions = range(ids.size) if positions is None else positions

    def __len__(self) -> int:
        return int(self.ids.size)

    @overload
    def __getitem__(self, index: int) -> TokenScore: ...
    @overload
    def __getitem__(self, index: slice) -> TokenScores: ...
    def __getitem__(self, index: int | slice) -> TokenScore | TokenScores:
        if isinstance(index, slice):
            return TokenScores(
                self.ids[index],
                self.log10_probs[index],
                self.context_lengths[index],
                self.oov[index],
                self._token_text,
                self._positions[index],
            )
        try:
            i = range(len(self))[index]  # negative indices from the end
        except IndexError:
            raise IndexError(f"token index {index} out of range for {len(self)} tokens") from None
        return TokenScore(
            self._token_text(self._positions[i]),
            int(self.ids[i]),
            float(self.log10_probs[i]),
            int(self.context_lengths[i]),
            bool(self.oov[i]),
        )

    def __iter__(self) -> Iterator[TokenScore]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))

    def __reduce__(self):
        # Pickled with the token texts made (the function that makes them may be a closure).
        texts = [self._token_text(p) for p in self._positions]
        return (TokenScores, (self.ids, self.log10_probs, self.context_lengths, self.oov, texts.__getitem__))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays: not hashable, as a list

    def __repr__(self) -> str:
        return f"TokenScores({len(self)} tokens)"

    def perplexities(self) -> dict:
        """:func:`perplexities` of these tokens."""
        return perplexities(self.log10_probs, self.oov)


def perplexity_of(log10_probs: np.ndarray) -> float:
    """10 ** (- mean log10 probability); nan (undefined) for no tokens."""
    return float(10 ** (-log10_probs.mean())) if log10_probs.size else math.nan


def perplexities(log10_probs: np.ndarray, oov: np.ndarray) -> dict:
    """The OOV count and the perplexity with and without the OOV tokens, as KenLM reports them; the
    perplexity of no tokens is undefined: a :class:`MemlmError`, and nan without OOVs when every token
    is one."""
    if not log10_probs.size:
        raise MemlmError("no tokens to score: the perplexity of no text is undefined")
    return {
        "oov": int(oov.sum()),
        "perplexity": perplexity_of(log10_probs),
        "perplexity_excluding_oov": perplexity_of(log10_probs[~oov]),
    }
