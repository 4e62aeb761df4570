"""The application: FastAPI's routes, each a thin shell around :mod:`.completions` or :mod:`.inspection`, behind
the :class:`.guards.Gate` (API key, body limit) and the :class:`.lane.Lane` (``/v1/completions``).

Work on a model (encoding, generation, scoring, explaining) and the rendering of its answer run in
Starlette's thread pool, and a streamed completion pulls each piece there too: the event loop only parses,
routes and sends, so a long generation never holds up ``/health`` or any other request (the core generates
with the GIL released). The one exception is a short completion (:func:`.completions.on_event_loop`: well under a
millisecond of work), answered on the event loop, where the hop to the pool would cost more than the work.
``POST /v1/completions`` is answered by :class:`.lane.Lane` before FastAPI; the other routes are FastAPI's.

Routes: ``GET /`` (the playground page), ``GET /health`` (200: the models are loaded before the server
listens), and, behind the API key when the server has one, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/score``, ``POST /tokenize``, ``POST /detokenize``, ``POST /v1/explain``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

import memlm
from memlm import checks
from memlm.errors import MemlmError
from memlm.serving import BODY_SECONDS, MAX_BODY_BYTES, MAX_BODY_SECONDS, MAX_TOKENS_CAP, completions, inspection
from memlm.serving.errors import JSONBody, install_handlers
from memlm.serving.guards import Gate
from memlm.serving.lane import Lane
from memlm.serving.registry import model_named
from memlm.serving.schemas import (
    CompletionRequest,
    DetokenizeRequest,
    ExplainRequest,
    ScoreRequest,
    TokenizeRequest,
    parsed,
)

#: The largest cap: what the core can count.
_LARGEST_CAP = 2**63 - 1


def create_app(
    models: dict[str, memlm.Model],
    api_key: str | None = None,
    max_tokens_cap: int = MAX_TOKENS_CAP,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_seconds: int = BODY_SECONDS,
) -> ASGIApp:
    """The application serving ``models`` (by name, :func:`memlm.serving.registry.load_models`): requests need
    ``Authorization: Bearer API_KEY`` when ``api_key`` is given; a completion generates at most
    ``max_tokens_cap`` tokens; a body over ``max_body_bytes`` is refused (413), one not all there ``body_seconds``
    after the request's head too (408)."""
    if not models:
        raise MemlmError("give at least one model to serve")
    for name, model in models.items():
        if not model.has_tokenizer:
            raise MemlmError(f"{name}: trained from an instance file (symbols, no tokenizer): it cannot be served")
    max_tokens_cap = checks.amount(max_tokens_cap, "max_tokens_cap", _LARGEST_CAP)
    max_body_bytes = checks.amount(max_body_bytes, "max_body_bytes", _LARGEST_CAP)
    if checks.amount(body_seconds, "body_seconds", MAX_BODY_SECONDS) == 0:
        raise MemlmError("body_seconds must be at least 1")
    if api_key is not None and not api_key:
        raise MemlmError("the API key is empty")
    playground = files("memlm.serving").joinpath("playground.html").read_text(encoding="utf-8")

    app = FastAPI(title="memlm", version=memlm.__version__, docs_url=None, redoc_url=None)
    install_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(playground)

    @app.get("/health")
    async def health() -> JSONBody:
        return JSONBody({"status": "ok"})

    @app.get("/v1/models")
    async def list_models() -> JSONBody:
        listed = [
            {"id": name, "object": "model", "created": _created(model), "owned_by": "memlm", "width": model.width}
            for name, model in models.items()
        ]
        return JSONBody({"object": "list", "data": listed})

    async def complete(body: bytes, content_type: str | None) -> Response:
        request = parsed(CompletionRequest, body, content_type)
        model = model_named(models, request.model)
        if not request.stream:
            if completions.on_event_loop(request, len(body)):
                return JSONBody(completions.complete(model, request, max_tokens_cap))
            return await _answer(completions.complete, model, request, max_tokens_cap)
        completion = await run_in_threadpool(completions.start, model, request, max_tokens_cap)
        include_usage = request.stream_options is not None and request.stream_options.include_usage
        return StreamingResponse(completions.events(completion, include_usage), media_type="text/event-stream")

    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> JSONBody:
        return await _answer(inspection.score, model_named(models, request.model), request)

    @app.post("/tokenize")
    async def tokenize(request: TokenizeRequest) -> JSONBody:
        return await _answer(inspection.tokenize, model_named(models, request.model), request)

    @app.post("/detokenize")
    async def detokenize(request: DetokenizeRequest) -> JSONBody:
        return await _answer(inspection.detokenize, model_named(models, request.model), request)

    @app.post("/v1/explain")
    async def explain(request: ExplainRequest) -> JSONBody:
        return await _answer(inspection.explain, model_named(models, request.model), request, max_tokens_cap)

    return Gate(Lane(app, {"/v1/completions": complete}), limit=max_body_bytes, key=api_key, seconds=body_seconds)


async def _answer(work: Callable[..., dict], *arguments: object) -> JSONBody:
    """``work(*arguments)`` rendered as JSON, both in the thread pool."""
    return await run_in_threadpool(lambda: JSONBody(work(*arguments)))


def _created(model: memlm.Model) -> int:
    """When the model's file was last written (seconds since 1970), as OpenAI's ``created``."""
    return int(model.path.stat().st_mtime) if model.path is not None else 0
