"""The single exception → HTTP mapper.

Every error leaves as ``{"error": "<snake_code>", "error_description": "..."}`` with
``Cache-Control: no-store``; unexpected exceptions become a bare ``server_error`` and are logged
by type only, never with request data.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from service.errors import (
    IdPError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    ServerError,
    TemporarilyUnavailable,
    UnsupportedMediaType,
)
from service.store.base import StorageUnavailable

__all__ = ["EXCEPTION_HANDLERS", "ErrorBody", "error_body", "error_for", "error_response"]

logger = logging.getLogger("idp.http")

_BY_STATUS: dict[int, type[IdPError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: RequestTooLarge,
    415: UnsupportedMediaType,
    503: TemporarilyUnavailable,
}


class ErrorBody(msgspec.Struct, frozen=True):
    error: str
    error_description: str


def error_body(error: IdPError) -> bytes:
    extra = error.extra()
    if extra:
        return msgspec.json.encode({**extra, "error": error.error, "error_description": error.description})
    return msgspec.json.encode(ErrorBody(error.error, error.description))


def error_for(exc: Exception, where: str) -> IdPError:
    """What a client is told about ``exc``: our own errors as they are, a storage outage as 503,
    input that recursed too deep as ``invalid_request``, anything else as a bare
    ``server_error``, logged by type only (``where``: method and path)."""
    if isinstance(exc, IdPError):
        return exc
    if isinstance(exc, RecursionError):
        # Only nested input recurses this deep, and every parser of ours bounds nesting first
        # (service.bounded_json); should one be missed, the client gets its parser's 400.
        logger.warning("input nested too deeply on %s", where)
        return InvalidRequest("The request is nested too deeply.")
    if isinstance(exc, StorageUnavailable):
        logger.warning("storage unavailable: %s", type(exc.__cause__).__name__)
        return TemporarilyUnavailable()
    logger.error("unhandled %s on %s", type(exc).__name__, where)
    return ServerError()


def error_response(error: IdPError) -> Response[bytes]:
    headers = {"Cache-Control": "no-store", **error.headers()}
    return Response(
        error_body(error), status_code=error.status_code, media_type="application/json", headers=headers
    )


def _idp_error(_: Request[Any, Any, Any], exc: IdPError) -> Response[bytes]:
    return error_response(exc)


def _validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    details = "; ".join(str(item.get("message", "")) for item in (exc.extra or []) if isinstance(item, dict))
    description = details or "The request body is not valid JSON of the expected shape."
    return error_response(InvalidRequest(description))


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    error_type = _BY_STATUS.get(exc.status_code)
    if error_type is not None:
        return error_response(error_type())
    if 400 <= exc.status_code < 500:
        # Litestar's own 4xx details ("Malformed JSON", …) describe the input, not our internals.
        return error_response(InvalidRequest(exc.detail or None))
    logger.error("http exception %s (cause: %s)", exc.status_code, type(exc.__cause__).__name__)
    return error_response(ServerError())


def _not_utf8(_: Request[Any, Any, Any], __: UnicodeDecodeError) -> Response[bytes]:
    # msgspec raises this (not a DecodeError) for invalid UTF-8 inside a JSON string.
    return error_response(InvalidRequest("The request body is not valid UTF-8."))


def _bad_json(_: Request[Any, Any, Any], exc: msgspec.MsgspecError) -> Response[bytes]:
    return error_response(InvalidRequest(f"The request body is invalid: {exc}"))


def _translated(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return error_response(error_for(exc, f"{request.method} {request.url.path}"))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    IdPError: _idp_error,
    StorageUnavailable: _translated,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    UnicodeDecodeError: _not_utf8,
    msgspec.MsgspecError: _bad_json,
    Exception: _translated,
}
