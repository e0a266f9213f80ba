"""AuthMiddleware on a small Starlette app with the real Store (SQLite in tmp_path)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app.security.auth import AuthMiddleware, bearer_token, is_public
from app.store.repo import Store


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer mk_abc", "mk_abc"),
        (b"bearer   mk_abc  ", "mk_abc"),
        (b"BEARER mk_abc", "mk_abc"),
        (b"Bearer", None),
        (b"Basic dXNlcjpwYXNz", None),
        (b"mk_abc", None),
        (b"", None),
    ],
)
def test_bearer_token(value: bytes, token: str | None) -> None:
    assert bearer_token([(b"authorization", value)]) == token


def test_no_header_no_token() -> None:
    assert bearer_token([(b"x-api-key", b"mk_abc")]) is None


@pytest.mark.parametrize(
    ("method", "path", "public"),
    [
        ("GET", "/healthz", True),
        ("POST", "/healthz", True),  # 405 from the router, no key needed to learn that
        ("GET", "/", True),
        ("GET", "/app.js", True),
        ("HEAD", "/app.css", True),
        ("POST", "/", False),
        ("GET", "/v1/sessions", False),
        ("GET", "/v1", False),
        ("GET", "/v1/", False),
        ("GET", "/openapi.json", False),
        ("GET", "/docs", False),
        ("DELETE", "/anything", False),
    ],
)
def test_is_public(method: str, path: str, public: bool) -> None:
    assert is_public(method, path) is public


def make_client(store: Store | None) -> TestClient:
    async def whoami(request: Request) -> JSONResponse:
        user = getattr(request.state, "user", None)
        return JSONResponse({"user": user.name if user else None})

    async def page(_: Request) -> PlainTextResponse:
        return PlainTextResponse("<html>")

    app = Starlette(routes=[Route("/v1/me", whoami), Route("/healthz", whoami), Route("/", page)])
    app.add_middleware(AuthMiddleware, store_of=lambda _: store)
    return TestClient(app)


def test_resolves_the_key_to_its_user(store: Store) -> None:
    alice = store.get_or_create_user("alice")
    _, key = store.create_api_key(alice.id)
    with make_client(store) as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).json() == {
            "user": "alice"
        }
        r = c.get("/v1/me")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert "memento keys create" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = c.get("/v1/me", headers={"Authorization": f"Bearer {key}x"})
        assert r.status_code == 401 and "invalid" in r.json()["error"]["message"]
        # public paths pass without a key, and without a user
        assert c.get("/healthz").json() == {"user": None}
        assert c.get("/").text == "<html>"


def test_a_revoked_key_is_refused(store: Store) -> None:
    bob = store.get_or_create_user("bob")
    rec, key = store.create_api_key(bob.id)
    store.revoke_api_key(rec.id)
    with make_client(store) as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_503_while_the_store_is_not_ready() -> None:
    with make_client(None) as c:
        r = c.get("/v1/me", headers={"Authorization": "Bearer mk_whatever"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "starting"


def test_websockets_need_a_key_too(store: Store) -> None:
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(ws.state.user.name)
        await ws.close()

    app = Starlette(routes=[WebSocketRoute("/v1/ws", echo)])
    app.add_middleware(AuthMiddleware, store_of=lambda _: store)
    alice = store.get_or_create_user("alice")
    _, key = store.create_api_key(alice.id)
    with TestClient(app) as c:
        with c.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {key}"}) as ws:
            assert ws.receive_text() == "alice"
        with pytest.raises(WebSocketDisconnect) as info, c.websocket_connect("/v1/ws"):
            pass
        assert info.value.code == 1008
