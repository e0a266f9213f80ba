"""`install_security(app, settings)`: API-key auth and per-user limits on the FastAPI app.

Call it once in create_app, after the routes and the body-limit middleware: the middlewares
added here wrap everything before them, so the order of a request is auth -> rate and
concurrency limits -> body limit -> routes. Calling it twice is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import Scope

from app.config import Settings
from app.security.auth import AuthMiddleware, is_public
from app.security.ratelimit import RateLimiter, RateLimitMiddleware

log = logging.getLogger("memento.security")


def install_security(app: FastAPI, settings: Settings) -> None:
    if getattr(app.state, "security_installed", False):
        return
    app.state.security_installed = True
    limiter = RateLimiter()
    app.state.rate_limiter = limiter  # tests and operators can inspect in-flight counts

    def services() -> Any:
        return getattr(app.state, "services", None)

    def store_of(_: Scope) -> Any:
        svc = services()
        return svc.store if svc is not None else None

    def user_of(scope: Scope) -> str | None:
        user = scope.get("state", {}).get("user")
        if user is not None:
            return str(user.id)
        svc = services()
        if settings.auth == "off" and svc is not None:
            return svc.local_user_id
        return None

    def limits() -> tuple[int, int]:
        return settings.rate_limit_per_minute, settings.max_concurrent_per_user

    app.add_middleware(RateLimitMiddleware, limits=limits, user_of=user_of, limiter=limiter)
    if settings.auth == "required":
        app.add_middleware(AuthMiddleware, store_of=store_of)
        log.info("auth: required (Authorization: Bearer <key>; `memento keys create --user NAME`)")
    else:
        log.info(
            "auth: off, every request acts as the single local user (listen on loopback only, "
            "or set MEMENTO_AUTH=required)"
        )
    _document(app, settings)


def _document(app: FastAPI, settings: Settings) -> None:
    """Add what these middlewares answer (401, 429) and the bearer scheme to the OpenAPI doc,
    so the document stays an accurate contract (clients and schemathesis rely on it)."""
    original = app.openapi
    auth = settings.auth == "required"

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        error_ref = {"$ref": "#/components/schemas/ErrorBody"}
        if "ErrorBody" not in components.get("schemas", {}):
            error_ref = {"type": "object"}
        if auth:
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key from `memento keys create --user NAME`",
            }
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items():
                if not isinstance(op, dict) or is_public(method.upper(), path):
                    continue
                responses = op.setdefault("responses", {})
                json_error = {"application/json": {"schema": error_ref}}
                responses.setdefault(
                    "429",
                    {
                        "description": "over the per-user rate or concurrency limit "
                        "(see the Retry-After header)",
                        "content": json_error,
                    },
                )
                if auth:
                    op["security"] = [{"bearer": []}]
                    responses.setdefault(
                        "401",
                        {
                            "description": "missing, invalid or revoked API key",
                            "content": json_error,
                        },
                    )
        app.openapi_schema = schema
        return schema

    # FastAPI's documented way to extend the schema is replacing this method on the instance
    app.openapi = openapi  # type: ignore[method-assign]
