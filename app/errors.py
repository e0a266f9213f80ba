"""Domain errors and their HTTP form, in one place.

Routes and services raise domain exceptions (ours, the store's, memory's, the engine's); the
handlers installed by `install_error_handlers` turn every one of them into
`{"error": {"message", "type", "param", "code", "field"}}` with a fitting status. Nothing else
builds error bodies.

The body is OpenAI's error object (`message`, `type`, `param`, `code`) plus our `field` (the
dotted name `param` spells OpenAI's way), so OpenAI clients read `.type` and `.param` from any
route. The status differs by API (issue 17): Memento's own routes answer 422 for a request
that is well-formed JSON but invalid (FastAPI's convention, documented and relied on by our
clients), while the OpenAI-compatible routes answer 400 as OpenAI does, because clients branch
on it (the `openai` SDK raises BadRequestError for 400, UnprocessableEntityError for 422).

Every error a request can meet, and what it answers (`ERRORS` below is this tree as a table;
the lower layers keep their own base class, so that `memory/` and the store never import the
service):

    AppError (here)                      its own status and code, below
    ├── NotFoundError                    404 not_found
    ├── InvalidFieldError                422 invalid
    ├── TooLargeError                    413 too_large
    ├── SessionBusyError                 409 session_busy
    ├── ConflictError                    409 conflict
    ├── RateLimitedError                 429 rate_limited
    ├── UnauthorizedError                401 unauthorized
    ├── EngineUnavailableError           503 engine_error
    └── ServiceStarting                  503 starting
    StoreError (app/store/errors.py)
    ├── NotFound                         404 not_found      (field: <kind>_id, or persona)
    ├── Conflict                         409 conflict
    ├── LimitExceeded                    413 too_large      (field: the limit)
    └── InvalidData                      422 invalid
    MemoryStrategyError (memory/types.py)
    ├── ContextOverflowError             413 context_overflow (field: content)
    └── StrategyConfigError              422 memory_error   (memory/base.py; UnknownStrategyError)
    EngineError (app/llm/types.py)       503 engine_error   (ModelLoadError too)
    └── EngineBusyError                  429 engine_busy    (Retry-After: 1)
    PersonaError (app/personas/errors.py)    422 invalid_persona
    LoreError (memory/lore/errors.py)        422 invalid_lore
    NoSuchVersion (memory/user_edits.py)     404 not_found
    pydantic ValidationError                 422 invalid    (the first bad field)
    a database fault (app/store/faults.py)   507 storage_full / 503 store_unavailable
    anything else                            500 internal   (logged with its traceback)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.llm.types import EngineBusyError, EngineError
from app.personas.errors import PersonaError
from app.store import errors as store_errors
from app.store.faults import store_fault
from memory.lore.errors import LoreError
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


class ServiceStarting(AppError):
    """A resource the lifespan has not built yet (or has torn down): the service is starting
    or shutting down."""

    status, code = 503, "starting"


# Paths served by the OpenAI-compatible router, and those OpenAI has that we do not (a client
# calling /v1/embeddings should get OpenAI's shape and statuses too).
OPENAI_PATHS = ("/v1/chat/", "/v1/models", "/v1/completions", "/v1/embeddings")


# how long a client should wait before retrying, by error code (a 503 of a dependency)
RETRY_AFTER = {"store_unavailable": 5, "engine_busy": 1}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PATHS)


def error_type(status: int) -> str:
    """OpenAI's `type` for a status: what its API sends (a bad key is an invalid request too)."""
    if status >= 500:
        return "server_error"
    if status == 429:
        return "requests"
    return "invalid_request_error"


def param_of(field: str | None) -> str | None:
    """Our dotted field as OpenAI spells a param: "messages.0.content" -> "messages[0].content"."""
    if not field:
        return None
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", field)


def openai_status(status: int, field: str | None) -> int:
    """The status an OpenAI-compatible route answers: OpenAI's 400 for any invalid request,
    including content over a size limit and a context overflow (its `context_length_exceeded`
    is a 400); a body too large to read stays 413."""
    if status == 422 or (status == 413 and field != "body"):
        return 400
    return status


# Codes for which OpenAI names no param although a field is to blame (its unknown-model 404 has
# "param": null): clients compare with OpenAI's answers, our `field` still names it.
_NO_PARAM = frozenset({"model_not_found"})


def error_body(
    code: str, message: str, field: str | None = None, status: int = 400
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": error_type(status),
            "param": None if code in _NO_PARAM else param_of(field),
            "code": code,
            "field": field,
        }
    }


def _response(
    request: Request, status: int, code: str, message: str, field: str | None = None
) -> JSONResponse:
    if is_openai_path(request.url.path):
        status = openai_status(status, field)
    headers = {"Retry-After": str(RETRY_AFTER[code])} if code in RETRY_AFTER else None
    return JSONResponse(
        status_code=status, content=error_body(code, message, field, status), headers=headers
    )


def dotted(loc: Sequence[Any]) -> str:
    """("body", "memory", "k") -> "memory.k": clients know their own body, not FastAPI's loc."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def _json_position(body: Any, offset: int) -> str:
    """ "line 2, column 8 (char 15)" for a character offset into the raw body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return f"line {line}, column {column} (char {offset})"


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def validation_error_fields(
    errors: Sequence[Mapping[str, Any]],
    content_type: str | None = None,
    body: Any = None,
) -> tuple[str, str | None]:
    """A one-line message naming every bad field, and the first field.

    Two cases name what FastAPI's own messages do not: a body that is not JSON says where it
    breaks (line, column), and a JSON body sent without `Content-Type: application/json` (which
    FastAPI reads as raw bytes, "Input should be a valid dictionary") names the header.
    """
    msgs = []
    first: str | None = None
    for err in errors:
        loc = tuple(err.get("loc", ()))
        kind = err.get("type")
        if kind == "json_invalid":
            # its loc is ("body", character offset), not a field
            field = "body"
            reason = (err.get("ctx") or {}).get("error") or err.get("msg", "invalid")
            where = _json_position(body, loc[1]) if len(loc) > 1 and isinstance(loc[1], int) else ""
            msg = f"invalid JSON at {where}: {reason}" if where else f"invalid JSON: {reason}"
        elif (
            loc == ("body",)
            and kind == "model_attributes_type"
            and isinstance(err.get("input"), bytes | str)
            and not _is_json(content_type)
        ):
            field = "content-type"
            got = f"got {content_type!r}" if content_type else "the header is missing"
            msg = f"the body must be JSON sent with Content-Type: application/json ({got})"
        else:
            field = dotted(loc)
            msg = err.get("msg", "invalid")
        first = first or field or None
        msgs.append(f"{field}: {msg}" if field else msg)
    return "; ".join(msgs) or "invalid request", first


Mapped = tuple[int, str, str, str | None]  # (status, code, message, field)


def _field(exc: BaseException) -> str | None:
    return getattr(exc, "field", None)


def _store_not_found(exc: store_errors.NotFound) -> str:
    return "persona" if exc.kind == "persona" else f"{exc.kind}_id"


# The one table: the first row whose type the error is an instance of answers (subclasses
# before their bases). Each row: type, status, code, the field it blames.
ERRORS: tuple[tuple[type[BaseException], int, str, Callable[[Any], str | None]], ...] = (
    (ContextOverflowError, 413, "context_overflow", lambda e: "content"),
    (MemoryStrategyError, 422, "memory_error", _field),
    (EngineBusyError, 429, "engine_busy", lambda e: None),
    (EngineError, 503, "engine_error", lambda e: None),
    (store_errors.NotFound, 404, "not_found", _store_not_found),
    (store_errors.Conflict, 409, "conflict", _field),
    (store_errors.LimitExceeded, 413, "too_large", lambda e: e.limit),
    (store_errors.InvalidData, 422, "invalid", lambda e: e.field),
    (PersonaError, 422, "invalid_persona", lambda e: _field(e) or "body"),
    (NoSuchVersion, 404, "not_found", _field),
    (LoreError, 422, "invalid_lore", lambda e: _field(e) or "body"),
)


def to_error(exc: BaseException) -> Mapped:
    """(status, code, message, field) for any exception: the one mapping, shared with SSE."""
    if isinstance(exc, AppError):
        return exc.status, exc.code, exc.message, exc.field
    if isinstance(exc, ValidationError):
        message, field = validation_error_fields(exc.errors())
        return 422, "invalid", message, field
    for kind, status, code, blame in ERRORS:
        if isinstance(exc, kind):
            return status, code, str(exc), blame(exc)
    fault = store_fault(exc)
    if fault is not None:
        return fault.status, fault.code, fault.message, None
    return 500, "internal", "internal server error", None


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    status, code, message, field = to_error(exc)
    if code == "internal":
        log.exception("unhandled error", exc_info=exc)
    elif status >= 500:
        log.error("%s: %s", type(exc).__name__, exc)
    return _response(request, status, code, message, field)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = validation_error_fields(
        exc.errors(), request.headers.get("content-type"), exc.body
    )
    return _response(request, 422, "invalid", message, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 401: "unauthorized"}
    return _response(
        request, exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    status, code, message, field = to_error(exc)
    if code in ("storage_full", "store_unavailable"):
        log.warning("%s: %s", code, message)  # the environment's fault: no traceback
    elif status >= 500:
        log.exception("unhandled error", exc_info=exc)
    return _response(request, status, code, message, field)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # a database fault (full disk, database away) is an answer, not a crash: handled here, not
    # by the catch-all, which re-raises into the server and drops the connection
    for cls in {AppError, ValidationError, DBAPIError, *(row[0] for row in ERRORS)}:
        app.add_exception_handler(cls, _app_error)
    app.add_exception_handler(Exception, _unexpected)
