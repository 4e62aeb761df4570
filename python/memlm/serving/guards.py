"""What a request must pass: when the server has one, the API key, then the body size and time limits, before any
route reads it; the server's token cap, before any generation.

:class:`Gate` answers 401 to a request for any path but the open ones (``/``, ``/health``) that does not carry
``Authorization: Bearer KEY`` (compared in constant time), before reading its body; then it reads the whole
body before the application sees it (so no parser ever sees more than the limit) and answers 413 to a body
over ``limit`` bytes, whether its ``Content-Length`` says so or its chunks add up to more, and 408 to one that has
not all arrived ``seconds`` after the request's head (a client that sends its body slowly, or never, would hold
the connection and its buffer for ever); both close the connection. :func:`within_cap`
answers 400 to a request for more tokens than ``--max-tokens-cap``.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memlm.serving.errors import APIError, error_response

#: The paths that need no API key: the playground page and the health check.
OPEN_PATHS = frozenset(["/", "/health"])


class Gate:
    """ASGI middleware: without the API key (``key``, None for none) a request for a path not in
    :data:`OPEN_PATHS` is answered 401, a request body over ``limit`` bytes 413, and one not all there after
    ``seconds`` 408, before the application runs (see the module doc)."""

    def __init__(self, app: ASGIApp, limit: int, key: str | None, seconds: float):
        self.app, self.limit, self.seconds = app, limit, seconds
        self.expected = None if key is None else f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, declared = None, None  # the first of each, as Starlette's headers give
        for name, value in scope["headers"]:
            if name == b"authorization" and given is None:
                given = value
            elif name == b"content-length" and declared is None:
                declared = value
        if self._locked(scope["path"]) and not hmac.compare_digest(given or b"", self.expected or b""):
            message = "a valid API key is needed: send the header 'Authorization: Bearer KEY'"
            error = APIError(401, message, None, "invalid_api_key", {"WWW-Authenticate": "Bearer"})
            await error_response(error)(scope, receive, send)
            return
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        try:
            body = await self._body(receive)
        except TooLarge:
            await self._refuse(scope, receive, send)
            return
        except TooSlow:
            message = f"the request body did not all arrive within {self.seconds:g} s"
            error = APIError(408, message, None, "request_timeout", {"Connection": "close"})
            await error_response(error)(scope, receive, send)
            return
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _body(self, receive: Receive) -> bytes | None:
        """:func:`read_body` within the limit, and within ``seconds`` (:class:`TooSlow`): a timer cancels the
        request's task, and the cancellation it caused (only that one) is turned into TooSlow."""
        task = asyncio.current_task()
        expired: list[bool] = []
        timer = asyncio.get_running_loop().call_later(self.seconds, lambda: (expired.append(True), task.cancel()))
        try:
            return await read_body(receive, self.limit)
        except asyncio.CancelledError:
            if not expired:
                raise
            if hasattr(task, "uncancel"):  # Python 3.11+: the task is no longer being cancelled
                task.uncancel()
            raise TooSlow from None
        finally:
            timer.cancel()

    def _locked(self, path: str) -> bool:
        """Whether ``path`` needs the API key."""
        return self.expected is not None and path not in OPEN_PATHS

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.limit:,} bytes"
        error = APIError(413, message, None, "request_too_large", {"Connection": "close"})
        await error_response(error)(scope, receive, send)


class TooLarge(Exception):
    """A request body over the limit."""


class TooSlow(Exception):
    """A request body that took longer than the server waits."""


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The request's whole body; None when the client left first; :class:`TooLarge` past ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if limit is not None and size > limit:
            raise TooLarge
        if not message.get("more_body", False):
            return b"".join(chunks)


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


def within_cap(value: int, cap: int, param: str) -> int:
    """``value``, a number of tokens to generate, once it is at most the server's ``cap`` (a 400
    :class:`APIError` naming the request field ``param`` otherwise)."""
    if value > cap:
        message = f"{param} must be at most {cap:,} (the server's --max-tokens-cap), got {value:,}"
        raise APIError(400, message, param, "invalid_value")
    return value
