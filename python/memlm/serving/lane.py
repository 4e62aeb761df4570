"""The fast lane: the routes answered before FastAPI, for speed (``POST /v1/completions``).

FastAPI's middleware stack and routing cost about 50 µs a request on a 2-core machine, as much as generating 32
tokens. :class:`Lane` sits between :class:`memlm.serving.guards.Gate` (so its requests have passed the API key
and the body limit) and the FastAPI application: a request for one of its paths goes to that path's handler, any
other on to the application. A handler takes the request's body and returns the response; an error it raises is
answered with OpenAI's error body, as the application's own handlers answer it
(:func:`memlm.serving.errors.error_for`). Its routes take POST only (405 otherwise) and are not in the
application's ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from memlm.serving.errors import APIError, error_for

#: A fast-lane route: the request's body -> the response.
Handler = Callable[[bytes], Awaitable[Response]]


class Lane:
    """ASGI: requests for the paths of ``routes`` answered by their handlers, others passed to ``app``."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Handler]):
        self.app, self.routes = app, dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        try:
            if method != "POST":
                raise APIError(405, f"Method Not Allowed: {method} {path}", headers={"Allow": "POST"})
            response = await handler(await _body(receive))
        except Exception as error:
            response = error_for(error, method, path)
        await response(scope, receive, send)


async def _body(receive: Receive) -> bytes:
    """The request's whole body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
