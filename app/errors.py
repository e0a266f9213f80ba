"""Domain errors and their HTTP form, in one place.

Routes and services raise domain exceptions (ours, the store's, memory's, the engine's); the
handlers installed by `install_error_handlers` turn every one of them into
`{"error": {"code", "message", "field"}}` with a fitting status. Nothing else builds error bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.llm.types import EngineError
from app.personas.errors import PersonaError
from app.store import errors as store_errors
from app.store.faults import store_fault
from memory.types import ContextOverflowError, MemoryStrategyError
from memory.user_edits import NoSuchVersion

log = logging.getLogger(__name__)


class AppError(Exception):
    """An error with an HTTP status, a stable machine code and (when one is to blame) a field."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class NotFoundError(AppError):
    status, code = 404, "not_found"


class InvalidFieldError(AppError):
    status, code = 422, "invalid"


class TooLargeError(AppError):
    status, code = 413, "too_large"


class SessionBusyError(AppError):
    status, code = 409, "session_busy"


class ConflictError(AppError):
    status, code = 409, "conflict"


class RateLimitedError(AppError):
    status, code = 429, "rate_limited"


class UnauthorizedError(AppError):
    status, code = 401, "unauthorized"


class EngineUnavailableError(AppError):
    status, code = 503, "engine_error"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


# how long a client should wait before retrying, by error code (a 503 of a dependency)
RETRY_AFTER = {"store_unavailable": 5}


def _response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER[code])} if code in RETRY_AFTER else None
    return JSONResponse(
        status_code=status, content=error_body(code, message, field), headers=headers
    )


def dotted(loc: Sequence[Any]) -> str:
    """("body", "memory", "k") -> "memory.k": clients know their own body, not FastAPI's loc."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def validation_error_fields(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """A one-line message naming every bad field, and the first field."""
    msgs = []
    first: str | None = None
    for err in errors:
        # a body that is not JSON at all: its loc is a character offset, not a field
        field = "body" if err.get("type") == "json_invalid" else dotted(err.get("loc", ()))
        first = first or field or None
        msgs.append(f"{field}: {err.get('msg', 'invalid')}" if field else err.get("msg", ""))
    return "; ".join(msgs) or "invalid request", first


def to_error(exc: BaseException) -> tuple[int, str, str, str | None]:
    """(status, code, message, field) for any exception: the one mapping, shared with SSE."""
    if isinstance(exc, AppError):
        return exc.status, exc.code, exc.message, exc.field
    if isinstance(exc, ContextOverflowError):
        return 413, "context_overflow", str(exc), "content"
    if isinstance(exc, MemoryStrategyError):
        return 422, "memory_error", str(exc), getattr(exc, "field", None)
    if isinstance(exc, EngineError):
        return 503, "engine_error", str(exc), None
    if isinstance(exc, ValidationError):
        message, field = validation_error_fields(exc.errors())
        return 422, "invalid", message, field
    mapped = _foreign(exc)
    if mapped is not None:
        return mapped
    return 500, "internal", "internal server error", None


def _foreign(exc: BaseException) -> tuple[int, str, str, str | None] | None:
    """Errors of the store and persona modules, matched by their own types."""
    field = getattr(exc, "field", None)
    if isinstance(exc, store_errors.NotFound):
        return 404, "not_found", str(exc), "persona" if exc.kind == "persona" else f"{exc.kind}_id"
    if isinstance(exc, store_errors.Conflict):
        return 409, "conflict", str(exc), field
    if isinstance(exc, store_errors.LimitExceeded):
        return 413, "too_large", str(exc), exc.limit
    if isinstance(exc, store_errors.InvalidData):
        return 422, "invalid", str(exc), exc.field
    if isinstance(exc, PersonaError):
        return 422, "invalid_persona", str(exc), field or "body"
    if isinstance(exc, NoSuchVersion):
        return 404, "not_found", str(exc), field
    fault = store_fault(exc)
    if fault is not None:
        return fault.status, fault.code, fault.message, None
    return None


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    status, code, message, field = to_error(exc)
    if code == "internal":
        log.exception("unhandled error", exc_info=exc)
    elif status >= 500:
        log.error("%s: %s", type(exc).__name__, exc)
    return _response(status, code, message, field)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = validation_error_fields(exc.errors())
    return _response(422, "invalid", message, field)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 401: "unauthorized"}
    return _response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    status, code, message, field = to_error(exc)
    if code in ("storage_full", "store_unavailable"):
        log.warning("%s: %s", code, message)  # the environment's fault: no traceback
    elif status >= 500:
        log.exception("unhandled error", exc_info=exc)
    return _response(status, code, message, field)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for cls in (
        AppError,
        ContextOverflowError,
        MemoryStrategyError,
        EngineError,
        ValidationError,
        store_errors.StoreError,
        PersonaError,
        NoSuchVersion,
        # a database fault (full disk, database away) is an answer, not a crash: handled here,
        # not by the catch-all, which re-raises into the server and drops the connection
        DBAPIError,
    ):
        app.add_exception_handler(cls, _app_error)
    app.add_exception_handler(Exception, _unexpected)
