"""What a request must pass: the body size limit and, when the server has one, the API key, before any route
reads it; the server's token cap, before any generation.

:class:`BodyLimit` reads the whole body before the application sees it (so no parser ever sees more than the
limit) and answers 413 to a body over ``limit`` bytes, whether its ``Content-Length`` says so or its chunks
add up to more. :func:`key_check` makes a FastAPI dependency answering 401 unless the request carries
``Authorization: Bearer KEY``; the key is compared in constant time. :func:`within_cap` answers 400 to a
request for more tokens than ``--max-tokens-cap``.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memlm.serving.errors import APIError, error_response


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the application runs."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.limit:,} bytes"
        error = APIError(413, message, None, "request_too_large", {"Connection": "close"})
        await error_response(error)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` as one message, then what the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def key_check(key: str | None):
    """A FastAPI dependency: nothing when ``key`` is None, else a 401 :class:`APIError` unless the request's
    ``Authorization`` header is ``Bearer KEY``."""
    expected = None if key is None else f"Bearer {key}".encode()

    async def check(request: Request) -> None:
        if expected is None:
            return
        given = dict(request.scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, expected):
            message = "a valid API key is needed: send the header 'Authorization: Bearer KEY'"
            raise APIError(401, message, None, "invalid_api_key", {"WWW-Authenticate": "Bearer"})

    return check


def within_cap(value: int, cap: int, param: str) -> int:
    """``value``, a number of tokens to generate, once it is at most the server's ``cap`` (a 400
    :class:`APIError` naming the request field ``param`` otherwise)."""
    if value > cap:
        message = f"{param} must be at most {cap:,} (the server's --max-tokens-cap), got {value:,}"
        raise APIError(400, message, param, "invalid_value")
    return value
