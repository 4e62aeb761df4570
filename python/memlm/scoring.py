"""What scores are reported as: per-token scores (KenLM style) and perplexities.

The probabilities themselves come from the core's scoring distribution (interpolated modified Kneser-Ney
over every context up to W; Witten-Bell along the IGTree path for models trained from instance files):
:meth:`memlm.Model.probabilities` gives it whole, :meth:`memlm.Model.score_windows` for many (context,
target) pairs at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
