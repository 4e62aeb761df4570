"""Choosing the next token from a node's class distribution: greedy, or sampled with Hugging Face's
``temperature`` / ``top_k`` / ``top_p`` semantics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memlm.errors import MemlmError


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick tokens. ``do_sample=False`` (the default, as in Hugging Face) is greedy."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise MemlmError(f"temperature must be positive, got {self.temperature}")
        if self.top_k < 0:
            raise MemlmError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise MemlmError(f"top_p must be in (0, 1], got {self.top_p}")


def choose(classes: np.ndarray, votes: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
    """Picks one class. ``classes``/``votes`` come best first (the classifier's answer first)."""
    if not config.do_sample:
        return int(classes[0])
    weights = np.asarray(votes, dtype=np.float64) ** (1.0 / config.temperature)
    if config.top_k:
        weights = weights[: config.top_k]
    probs = weights / weights.sum()
    if config.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, config.top_p) + 1)]
        mask = np.zeros_like(probs, dtype=bool)
        mask[keep] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    return int(classes[rng.choice(len(probs), p=probs)])
