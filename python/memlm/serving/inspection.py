"""What the API tells about a text, besides completing it: ``POST /v1/score`` (per-token scores and the
perplexity), ``POST /tokenize`` and ``POST /detokenize`` (vLLM's names), ``POST /v1/explain`` (the records of
:meth:`memlm.Model.explain`). Each function takes a checked request body and returns the response's JSON
object; a bad value raises (a :class:`memlm.MemlmError` or an :class:`APIError`: a 400 either way)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import memlm
from memlm.serving.errors import APIError
from memlm.serving.guards import within_cap
from memlm.serving.schemas import DetokenizeRequest, ExplainRequest, ScoreRequest, TokenizeRequest


def known_ids(model: memlm.Model, ids: Sequence[int], param: str) -> list[int]:
    """``ids`` once each is one of the model's tokens: below :attr:`memlm.Model.n_ids` and not the padding
    id (a 400 :class:`APIError` naming the request field ``param`` otherwise)."""
    for i in ids:
        if not 0 <= i < model.n_ids or i == model.pad_id:
            message = f"token id {i} is not one of the model's tokens (0 to {model.pad_id - 1})"
            raise APIError(400, message, param, "invalid_value")
    return list(ids)


def score(model: memlm.Model, request: ScoreRequest) -> dict:
    """Per token its text, id, log10 probability, matched context length and OOV flag (KenLM's), and the
    perplexity with and without OOV tokens (null where it is undefined: no token that is not OOV)."""
    scores = model.score(request.text, cache=request.cache)
    perplexities = scores.perplexities()  # no tokens: an error
    ids = scores.ids.tolist()
    columns = zip(ids, scores.log10_probs.tolist(), scores.context_lengths.tolist(), scores.oov.tolist(), strict=True)
    tokens = [
        {"token": model.token_string(i), "id": i, "log10_prob": p, "context_length": n, "oov": oov}
        for i, p, n, oov in columns
    ]
    finite = {key: None if isinstance(v, float) and not math.isfinite(v) else v for key, v in perplexities.items()}
    return {"model": request.model, "tokens": tokens, **finite}


def tokenize(model: memlm.Model, request: TokenizeRequest) -> dict:
    ids = model.encode(request.prompt)
    return {"model": request.model, "tokens": ids, "count": len(ids)}


def detokenize(model: memlm.Model, request: DetokenizeRequest) -> dict:
    return {"model": request.model, "prompt": model.decode(known_ids(model, request.tokens, "tokens"))}


def explain(model: memlm.Model, request: ExplainRequest, max_tokens_cap: int) -> dict:
    """The explanation of every token (``to_dict()`` of each record); ``provenance`` says whether the model
    cites training passages (``evidence`` is null in every record when it does not); ``strings`` gives the
    text of every id the records name (contexts, counts, neighbours), ``pad_id`` the padding id among them
    (a context before a block's start)."""
    generate = within_cap(request.generate, max_tokens_cap, "generate")
    options = {"algorithm": request.algorithm, "evidence": request.evidence, "cache": request.cache}
    records = model.explain(request.text, generate=generate, **options)
    named = {i for r in records for i in (*r.context, *r.counts, r.prediction_id)}
    named.update(i for r in records for n in r.neighbours for i in (*n.context, *n.counts) if i is not None)
    return {
        "model": request.model,
        "provenance": model.has_provenance,
        "pad_id": model.pad_id,
        "strings": {str(i): model.token_string(i) for i in sorted(named)},
        "explanations": [record.to_dict() for record in records],
    }
