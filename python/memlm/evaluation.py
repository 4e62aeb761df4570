"""Scoring and evaluation in the paper's protocol (SPEC §4-5): every token of every block of a text is a
target, its context the previous W tokens of the same block, left-padded."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memlm.corpus import read_blocks, split_blocks
from memlm.model import Model


@dataclass(frozen=True)
class TokenScore:
    """One token's score, as KenLM reports it."""

    token: str
    id: int
    #: log10 probability under the scoring distribution (interpolated Witten-Bell back-off).
    log10_prob: float
    #: Context positions matched on the IGTree path.
    context_length: int
    #: Whether the token never occurred as a target in training.
    oov: bool


def windows(model: Model, blocks: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(contexts (n, W), targets (n,)) of every token of every block, each block left-padded."""
    width, pad = model.width, model._core.pad
    contexts, targets = [], []
    for block in blocks:
        ids = np.asarray(model.encode(block), dtype=np.uint32)
        if ids.size == 0:
            continue
        padded = np.concatenate([np.full(width, pad, dtype=np.uint32), ids])
        contexts.append(np.lib.stride_tricks.sliding_window_view(padded, width)[: ids.size])
        targets.append(ids)
    if not targets:
        return np.zeros((0, width), dtype=np.uint32), np.zeros(0, dtype=np.uint32)
    return np.ascontiguousarray(np.concatenate(contexts)), np.concatenate(targets)


def perplexity_of(log10_probs: np.ndarray) -> float:
    """10 ** (- mean log10 probability); infinite for no tokens."""
    return float(10 ** (-log10_probs.mean())) if log10_probs.size else math.inf


def _scored(model: Model, contexts: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log10 probabilities, matched depths, OOV flags) of the targets after their contexts."""
    log10, depth = model._core.score_batch(contexts, targets)
    return log10, depth, model._core.class_counts[targets] == 0


def _perplexities(log10: np.ndarray, oov: np.ndarray) -> dict:
    return {
        "oov": int(oov.sum()),
        "perplexity": perplexity_of(log10),
        "perplexity_excluding_oov": perplexity_of(log10[~oov]),
    }


def score(model: Model, text: str) -> list[TokenScore]:
    """Per-token scores of `text` (split into blocks at blank lines)."""
    contexts, targets = windows(model, split_blocks(text))
    log10, depth, oov = _scored(model, contexts, targets)
    return [
        TokenScore(model.decode([int(t)]), int(t), float(p), int(d), bool(o))
        for t, p, d, o in zip(targets, log10, depth, oov, strict=True)
    ]


def perplexity(model: Model, text: str) -> dict:
    """Perplexity of `text` with and without OOV tokens, as KenLM reports them."""
    contexts, targets = windows(model, split_blocks(text))
    log10, _, oov = _scored(model, contexts, targets)
    return {"tokens": int(targets.size), **_perplexities(log10, oov)}


def evaluate(
    model: Model,
    sources: Iterable[str | Path],
    algorithm: str = "igtree",
    text_field: str = "text",
    errors: str = "strict",
    **knn,
) -> dict:
    """Top-1 and top-5 accuracy of `algorithm`, perplexity, tokens per second and peak memory."""
    contexts, targets = windows(model, read_blocks(sources, text_field=text_field, errors=errors))
    start = time.perf_counter()
    classes, _, _, _ = model.predict_batch(contexts, top_k=5, algorithm=algorithm, **knn)
    seconds = time.perf_counter() - start
    log10, _, oov = _scored(model, contexts, targets)
    n = int(targets.size)
    return {
        "algorithm": algorithm,
        **({"k": knn.get("k", 1), "vote": knn.get("vote", "majority")} if algorithm != "igtree" else {}),
        "width": model.width,
        "tokens": n,
        "correct": int((classes[:, 0] == targets).sum()),
        "accuracy": float((classes[:, 0] == targets).mean()) if n else 0.0,
        "top5_accuracy": float((classes == targets[:, None]).any(axis=1).mean()) if n else 0.0,
        **_perplexities(log10, oov),
        "seconds": seconds,
        "tokens_per_second": n / seconds if seconds > 0 else math.inf,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
