"""The fast lane: the routes answered before FastAPI, for speed (``POST /v1/completions``).

FastAPI's middleware stack and routing cost about 50 µs a request on a 2-core machine, as much as generating 32
tokens. :class:`Lane` sits between :class:`memlm.serving.guards.Gate` (so its requests have passed the API key
and the body limit) and the FastAPI application: a request for one of its paths goes to that path's handler, any
other on to the application. A handler takes the request's body and returns the response; an error it raises is
answered with OpenAI's error body, as the application's own handlers answer it
(:func:`memlm.serving.errors.error_for`), and a handler parses the body as FastAPI would
(:func:`memlm.serving.schemas.parsed`). Its routes take POST only (405 otherwise) and are not in the
application's ``/openapi.json`` (OpenAI's own specification describes ``/v1/completions``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from memlm.serving.errors import APIError, error_for
from memlm.serving.guards import read_body

#: A fast-lane route: (the request's body, its Content-Type or None) -> the response.
Handler = Callable[[bytes, str | None], Awaitable[Response]]


class Lane:
    """ASGI: requests for the paths of ``routes`` (with or without a trailing slash) answered by their handlers,
    others passed to ``app``."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Handler]):
        self.app, self.routes = app, dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"].rstrip("/")) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        try:
            if method != "POST":
                raise APIError(405, f"Method Not Allowed: {method} {path}", headers={"Allow": "POST"})
            body = await read_body(receive)
            if body is None:  # the client left (behind the Gate, never: it has read the body)
                return
            content_type = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), None)
            response = await handler(body, content_type)
        except Exception as error:
            response = error_for(error, method, path)
        await response(scope, receive, send)
