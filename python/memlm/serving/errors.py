"""Errors as OpenAI's API sends them: a status and ``{"error": {"message", "type", "param", "code"}}``.

:func:`error_for` is the response to any error a request raised; :func:`install_handlers` makes every failure of
a FastAPI route answer in that shape: an :class:`APIError` raised by the server's own checks, a request body that
is not valid JSON or not of the schema (400, the message naming the field), a :class:`memlm.MemlmError` raised by
the model on a bad value (400), an unknown route or method (404, 405), and anything unexpected (500, its traceback
logged). A request never stops the server."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from memlm.errors import MemlmError

log = logging.getLogger("memlm.serve")

#: What a request whose body is missing or not a JSON object is told.
NOT_AN_OBJECT = "the request body must be a JSON object, sent with 'Content-Type: application/json'"
#: OpenAI's error types, by status, where not ``invalid_request_error`` (4xx) or ``server_error`` (5xx).
_TYPES = {401: "authentication_error"}


class APIError(Exception):
    """A request the server refuses: its HTTP ``status``, a one-line ``message``, the request field at fault
    (``param``) and a machine-readable ``code`` (both may be None), and ``headers`` to send with it."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


#: Compact JSON, UTF-8 as it is (one encoder for every response: ``json.dumps`` with options makes one a call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_bytes(value: object) -> bytes:
    """``value`` as compact JSON (UTF-8); a NaN or an infinity is a bug here (JSON has none), so it raises
    rather than sending invalid JSON."""
    return _ENCODER.encode(value).encode()


class JSONBody(Response):
    """A JSON response, rendered by :func:`json_bytes`."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return json_bytes(content)


def error_response(error: APIError) -> JSONBody:
    """The response of ``error``: its status, headers and OpenAI's error body."""
    body = error_body(error.status, error.message, error.param, error.code)
    return JSONBody(body, status_code=error.status, headers=error.headers)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error body for an error of HTTP ``status``: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def validation_error(errors: list[dict]) -> APIError:
    """A 400 :class:`APIError` for pydantic's (or FastAPI's) ``errors``: the first, named by its field path,
    with how many more there are; a body that is not a JSON object is said so."""
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    kind = first.get("type")
    if kind == "json_invalid":
        reason, where = first.get("ctx", {}).get("error", "invalid"), " ".join(location)
        at = f" (at character {where})" if where else ""  # pydantic's own parser names the line and column
        return APIError(400, f"the request body is not valid JSON: {reason}{at}", None, "invalid_json")
    # A check of ours (a ValueError in a validator) in its own words, without pydantic's "Value error, ".
    ours = kind == "value_error"
    reason = str(first["ctx"]["error"]) if ours else str(first["msg"])
    if not location:  # the body as a whole: not an object, or one of our checks of several fields
        return APIError(400, reason if ours else NOT_AN_OBJECT, None, "invalid_value")
    message = f"{'.'.join(location)}: {reason}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return APIError(400, message, location[0], "invalid_value")


def error_for(error: Exception, method: str, path: str) -> JSONBody:
    """The response to ``error``, raised while answering ``method path``: an :class:`APIError`'s own, 400 for a
    :class:`memlm.MemlmError` (a bad value the model refused), else 500 (the traceback logged)."""
    if isinstance(error, APIError):
        return error_response(error)
    if isinstance(error, MemlmError):
        return error_response(APIError(400, str(error), None, "invalid_value"))
    log.error("%s %s failed", method, path, exc_info=error)
    return error_response(APIError(500, f"internal error: {type(error).__name__}: {error}"))


def install_handlers(app: FastAPI) -> None:
    """Answers every failure of a request with OpenAI's error body (see the module's docstring)."""

    # APIError and MemlmError need handlers of their own although Exception's does the same: Starlette gives
    # Exception's to its ServerErrorMiddleware, which raises the error again once answered (a traceback in the log).
    @app.exception_handler(APIError)
    @app.exception_handler(MemlmError)
    async def _known(request: Request, error: Exception) -> Response:
        return error_for(error, request.method, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> Response:
        return error_response(validation_error(list(error.errors())))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> Response:
        message = f"{error.detail}: {request.method} {request.url.path}"
        return error_response(APIError(error.status_code, message, headers=error.headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        return error_for(error, request.method, request.url.path)
