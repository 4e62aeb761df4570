"""The evaluation protocol: every token of every block of a held-out text is a target, its context the W
tokens before it in the same block, left-padded at the block's start (blocks are split at blank lines, as
in training). Reported: top-1 and top-5 accuracy of a classifier and top-1 accuracy of the scoring
distribution's most probable token, the perplexity of the scoring
distribution with and without out-of-vocabulary targets, throughput and peak memory. Each document (a whole
text file, or one JSONL record) is scored on its own by the document cache."""

from __future__ import annotations

import math
import resource
import time
import warnings
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memlm import checks
from memlm.corpus import read_documents
from memlm.scoring import perplexities

if TYPE_CHECKING:
    from memlm.model import Model


def evaluate(
    model: Model,
    sources: Iterable[str | Path],
    algorithm: str = "igtree",
    text_field: str = "text",
    errors: str = "strict",
    cache: bool = True,
    **knn,
) -> dict:
    """Top-1 and top-5 accuracy of ``algorithm`` (``knn``: ``k``, ``vote``, ``decay`` as in
    :meth:`memlm.Model.predict`), top-1 accuracy of the scoring distribution
    (:meth:`memlm.Model.most_probable`), perplexity (``cache``: with the document cache, as
    :meth:`memlm.Model.score`, reset at every document: a whole text file, or one JSONL record), tokens per
    second of the classification and of the scoring, and peak memory."""
    model.check_query(algorithm, **knn)  # before the text is read
    cache = checks.flag(cache, "cache")
    windows = [model.windows(blocks) for blocks in read_documents(sources, text_field, errors) if blocks]
    contexts, targets = np.concatenate([c for c, _ in windows]), np.concatenate([t for _, t in windows])
    bounds = np.cumsum([0, *(t.size for _, t in windows)])  # of the documents' windows
    del windows
    start = time.perf_counter()
    classes, _, _, _ = model.predict_batch(contexts, top_k=5, algorithm=algorithm, **knn)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    if cache and model.cache_weights is not None:
        # One document after another, each from an empty cache.
        scores = [model.score_windows(contexts[a:b], targets[a:b]) for a, b in pairwise(bounds)]
        log10, oov = np.concatenate([s[0] for s in scores]), np.concatenate([s[2] for s in scores])
    else:
        log10, _, oov = model.score_windows(contexts, targets, cache=False)
    scoring_seconds = time.perf_counter() - start
    n = int(targets.size)
    scoring_accuracy = None  # models without Kneser-Ney statistics have no scoring argmax
    if model.info()["scoring"] == "kneser_ney":
        scoring_accuracy = float((model.most_probable(contexts) == targets).mean()) if n else 0.0
    return {
        "algorithm": algorithm,
        **({"k": knn.get("k", 1), "vote": knn.get("vote", "majority")} if algorithm != "igtree" else {}),
        "width": model.width,
        "tokens": n,
        "correct": int((classes[:, 0] == targets).sum()),
        "accuracy": float((classes[:, 0] == targets).mean()) if n else 0.0,
        "top5_accuracy": float((classes == targets[:, None]).any(axis=1).mean()) if n else 0.0,
        "scoring_accuracy": scoring_accuracy,
        **perplexities(log10, oov),
        "seconds": seconds,
        "tokens_per_second": n / seconds if seconds > 0 else math.inf,
        "scoring_seconds": scoring_seconds,
        "scoring_tokens_per_second": n / scoring_seconds if scoring_seconds > 0 else math.inf,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _score(model: Model, text: str):
    return model.score(text)


def _perplexity(model: Model, text: str) -> dict:
    return model.perplexity(text)


def _windows(model: Model, blocks: Iterable[str]):
    return model.windows(blocks)


def _moved(name: str):
    import memlm.scoring

    return {
        "TokenScore": (memlm.scoring.TokenScore, "memlm.scoring.TokenScore"),
        "perplexity_of": (memlm.scoring.perplexity_of, "memlm.scoring.perplexity_of"),
        "score": (_score, "Model.score(text)"),
        "perplexity": (_perplexity, "Model.perplexity(text)"),
        "windows": (_windows, "Model.windows(blocks)"),
    }.get(name)


def __getattr__(name: str):
    """Names that moved out of this module: still found here, with a :class:`DeprecationWarning`."""
    moved = _moved(name)
    if moved is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"memlm.evaluation.{name} is deprecated: use {moved[1]}", DeprecationWarning, stacklevel=2)
    return moved[0]
