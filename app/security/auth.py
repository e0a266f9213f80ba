"""API-key authentication: `Authorization: Bearer <key>` -> `request.state.user`.

A pure ASGI middleware, not a FastAPI dependency, so that it also guards what dependencies never
see (404s of unknown paths, 405s, the OpenAPI document) and runs before the body is read: an
anonymous client cannot make the server parse a megabyte. Routes keep asking `get_current_user`
(app/deps.py), which reads the user this layer puts on the request state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_body

# Reachable without a key: liveness, and the web page's own files (the page then sends the key).
PUBLIC_PATHS = frozenset({"/healthz"})
# Non-/v1 paths that are still API surface: they need a key like /v1 does.
PROTECTED_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

Verify = Callable[[str], Any]  # key -> user record (with .id and .name) or None


def is_public(method: str, path: str) -> bool:
    """Paths anyone may GET: /healthz and the static page assets served at /."""
    if path in PUBLIC_PATHS:
        return True
    if method not in ("GET", "HEAD"):
        return False
    return not (path in PROTECTED_PATHS or path == "/v1" or path.startswith("/v1/"))


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of an `Authorization: Bearer <key>` header (scheme case-insensitive), or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            try:
                scheme, _, token = value.decode("latin-1").strip().partition(" ")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                return None
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A complete `{"error": {...}}` JSON response, written straight to the ASGI channel."""
    body = json.dumps(error_body(code, message, field, status)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    """With auth required, resolve the bearer key to its user or answer 401.

    `store_of(scope)` returns the Store (None while the service starts: 503). The key lookup is
    a database read, so it runs in a worker thread.
    """

    def __init__(self, app: ASGIApp, store_of: Callable[[Scope], Any]) -> None:
        self.app = app
        self.store_of = store_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # no route speaks WebSocket today; one added later must not bypass auth
            if await self._user(scope) is None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        key = bearer_token(scope.get("headers", []))
        if key is None:
            await send_error(
                send,
                401,
                "unauthorized",
                "missing API key: send 'Authorization: Bearer <key>' (create one with "
                "`memento keys create --user NAME`)",
                "authorization",
                [(b"www-authenticate", b'Bearer realm="memento"')],
            )
            return
        store = self.store_of(scope)
        if store is None:
            await send_error(send, 503, "starting", "the service is starting; retry shortly")
            return
        user = await asyncio.to_thread(store.verify_api_key, key)
        if user is None:
            await send_error(
                send,
                401,
                "unauthorized",
                "invalid or revoked API key",
                "authorization",
                [(b"www-authenticate", b'Bearer realm="memento", error="invalid_token"')],
            )
            return
        # a fresh dict: the server's per-request state may be a copy of shared lifespan state
        scope["state"] = {**scope.get("state", {}), "user": user}
        await self.app(scope, receive, send)

    async def _user(self, scope: Scope) -> Any:
        """The user of the scope's bearer key (setting it on the scope state), or None."""
        key = bearer_token(scope.get("headers", []))
        store = self.store_of(scope)
        if key is None or store is None:
            return None
        user = await asyncio.to_thread(store.verify_api_key, key)
        if user is not None:
            scope["state"] = {**scope.get("state", {}), "user": user}
        return user
