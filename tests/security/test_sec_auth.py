"""Auth required: every route but /healthz (and the page's static files) needs a valid key."""

from __future__ import annotations

import re

import pytest
from support.server import LiveServer, error_of


def api_routes(server: LiveServer) -> list[tuple[str, str]]:
    """(method, concrete path) of every API route, path parameters filled with dummies."""
    out = []
    for template, item in server.app.openapi()["paths"].items():
        path = re.sub(r"\{message_id\}", "1", template)
        path = re.sub(r"\{[^}]+\}", "x", path)
        out += [(method.upper(), path) for method in item]
    return out


def test_every_api_route_needs_a_key(server: LiveServer) -> None:
    routes = api_routes(server)
    assert len(routes) > 15, routes  # the whole API, not a sample
    bad = {"Authorization": "Bearer mk_not-a-real-key"}
    with server.client() as anon:
        for method, path in routes:
            if path == "/healthz":
                continue
            for headers in ({}, bad, {"Authorization": "Basic dXNlcjpwYXNz"}):
                r = anon.request(method, path, headers=headers, json={})
                err = error_of(r, 401)
                assert err["code"] == "unauthorized", (method, path, err)
                assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)


def test_unknown_paths_and_docs_need_a_key_too(server: LiveServer) -> None:
    with server.client() as anon:
        for path in ("/v1/nope", "/v1", "/openapi.json", "/docs"):
            assert error_of(anon.get(path), 401)["code"] == "unauthorized", path
        # writes anywhere are API surface, even outside /v1
        assert anon.post("/", json={}).status_code == 401


def test_health_and_the_page_are_public(server: LiveServer) -> None:
    with server.client() as anon:
        assert anon.get("/healthz").json()["status"] == "ok"
        page = anon.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        # every asset the page references loads without a key
        assets = re.findall(r'(?:src|href)="/?([\w./-]+\.(?:js|css))"', page.text)
        assert assets, page.text[:500]
        for asset in assets:
            assert anon.get("/" + asset).status_code == 200, asset


def test_a_valid_key_works_and_a_revoked_one_stops_working(server: LiveServer) -> None:
    user_id, key = server.new_key()
    with server.client(key) as c:
        assert c.get("/v1/sessions").status_code == 200
        # the scheme is case-insensitive (RFC 7235)
        assert c.get("/v1/sessions", headers={"Authorization": f"bearer {key}"}).status_code == 200
        keys = server.services.store.list_api_keys(user_id)
        server.services.store.revoke_api_key(keys[0].id)
        err = error_of(c.get("/v1/sessions"), 401)
        assert "revoked" in err["message"] or "invalid" in err["message"]


@pytest.mark.parametrize("header", ["Bearer", "Bearer  mk_", "Token abc", "mk_abc", "Bearer a b"])
def test_malformed_authorization_headers_are_401(server: LiveServer, header: str) -> None:
    with server.client() as anon:
        r = anon.get("/v1/sessions", headers={"Authorization": header})
        assert error_of(r, 401)["code"] == "unauthorized"


def test_a_key_of_another_user_prefix_does_not_authenticate(server: LiveServer) -> None:
    _, key = server.new_key()
    with server.client() as anon:
        for forged in (key[:-1], key + "x", key.upper(), key[:11]):
            r = anon.get("/v1/sessions", headers={"Authorization": f"Bearer {forged}"})
            error_of(r, 401)


def test_openapi_documents_the_bearer_scheme_and_401(server: LiveServer) -> None:
    _, key = server.new_key()
    with server.client(key) as c:
        doc = c.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    op = doc["paths"]["/v1/sessions"]["get"]
    assert {"401", "429"} <= set(op["responses"]) and op["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
