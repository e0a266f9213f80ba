"""Every configurable limit is enforced and answered with 413/422 naming the limit.

The shared server runs with small limits (tests/security/conftest.py); each test reads the
value from the live settings, so the assertions follow the configuration.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from support.server import LiveServer, error_of

from app.personas.errors import PersonaError
from app.personas.loader import load_personas


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    _, key = server.new_key()
    with server.client(key) as c:
        yield c


@pytest.fixture
def sid(client: httpx.Client) -> str:
    r = client.post("/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "buffer"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_message_size(server: LiveServer, client: httpx.Client, sid: str) -> None:
    limit = server.settings.max_message_chars
    too_long = "a" * (limit + 1)
    for path, body in (
        (f"/v1/sessions/{sid}/messages", {"content": too_long, "max_tokens": 2}),
        (f"/v1/sessions/{sid}/context", {"content": too_long}),
        (f"/v1/sessions/{sid}/history", {"messages": [{"role": "user", "content": too_long}]}),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": too_long}], "max_tokens": 2},
        ),
    ):
        # a field over a limit is OpenAI's 400 on its route, our 413 on ours
        err = error_of(client.post(path, json=body), 400 if path.endswith("completions") else 413)
        assert str(limit) in err["message"] and "MEMENTO_MAX_MESSAGE_CHARS" in err["message"], err
        assert err["field"] and err["field"].endswith("content"), err
    # nothing was stored by the refused requests
    assert client.get(f"/v1/sessions/{sid}/messages").json()["messages"] == []
    # exactly at the limit is fine (the dry run costs no generation)
    assert (
        client.post(f"/v1/sessions/{sid}/context", json={"content": "a" * limit}).status_code == 200
    )


def test_body_size(server: LiveServer, client: httpx.Client, sid: str) -> None:
    limit = server.settings.max_body_bytes
    body = json.dumps({"content": "b" * (limit + 10)}).encode()
    err = error_of(
        client.post(
            f"/v1/sessions/{sid}/messages",
            content=body,
            headers={"content-type": "application/json"},
        ),
        413,
    )
    assert str(limit) in err["message"] and "body" in err["message"], err


def test_body_size_chunked(server: LiveServer, client: httpx.Client, sid: str) -> None:
    limit = server.settings.max_body_bytes
    body = json.dumps({"content": "b" * (limit + 10)}).encode()

    # without a Content-Length (chunked), the limit must hold as the body streams in
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    err = error_of(
        client.post(
            f"/v1/sessions/{sid}/messages",
            content=chunks(),
            headers={"content-type": "application/json"},
        ),
        413,
    )
    assert str(limit) in err["message"]


def test_history_import_size(server: LiveServer, client: httpx.Client, sid: str) -> None:
    limit = server.settings.max_history_import
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"}
        for i in range(limit + 1)
    ]
    err = error_of(client.post(f"/v1/sessions/{sid}/history", json={"messages": turns}), 413)
    assert str(limit) in err["message"] and "MEMENTO_MAX_HISTORY_IMPORT" in err["message"], err
    assert client.get(f"/v1/sessions/{sid}/messages").json()["messages"] == []
    ok = client.post(f"/v1/sessions/{sid}/history", json={"messages": turns[:limit]})
    assert ok.status_code == 201 and len(ok.json()["ids"]) == limit

    # a whole-session import is bounded by the same limit
    export = client.get(f"/v1/sessions/{sid}/export").json()
    export["messages"] = export["messages"] + [dict(export["messages"][0])]
    for i, m in enumerate(export["messages"]):
        m["id"] = i + 1
    err = error_of(client.post("/v1/sessions/import", json=export), 413)
    assert str(limit) in err["message"], err


def big_persona(size: int) -> dict[str, object]:
    return {
        "id": f"big-{secrets.token_hex(4)}",
        "name": "Big",
        "system_prompt": "You are big. " + "x" * size,
    }


def test_persona_upload_size_yaml(server: LiveServer, client: httpx.Client) -> None:
    limit = server.settings.max_persona_bytes
    text = yaml.safe_dump(big_persona(limit))
    r = client.post("/v1/personas", content=text, headers={"content-type": "application/yaml"})
    err = error_of(r, 422)
    assert str(limit) in err["message"] and "MEMENTO_MAX_PERSONA_BYTES" in err["message"], err


def test_persona_upload_size_json(server: LiveServer, client: httpx.Client) -> None:
    limit = server.settings.max_persona_bytes
    r = client.post("/v1/personas", json=big_persona(limit))
    err = error_of(r, 422)
    assert "MEMENTO_MAX_PERSONA_BYTES" in err["message"], err


def test_persona_file_size_stops_startup(tmp_path: Path) -> None:
    (tmp_path / "huge.yaml").write_text(yaml.safe_dump(big_persona(5000)))
    with pytest.raises(PersonaError) as info:
        load_personas(tmp_path, max_bytes=4000)
    assert "huge.yaml" in str(info.value) and "MEMENTO_MAX_PERSONA_BYTES" in str(info.value)


def test_max_tokens(server: LiveServer, client: httpx.Client, sid: str) -> None:
    limit = server.settings.max_tokens_limit
    over = limit + 1
    for path, body in (
        (f"/v1/sessions/{sid}/messages", {"content": "hi", "max_tokens": over}),
        (f"/v1/sessions/{sid}/context", {"content": "hi", "max_tokens": over}),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": over},
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": over},
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": over},
        ),
    ):
        err = error_of(client.post(path, json=body), 400 if path.endswith("completions") else 422)
        assert str(limit) in err["message"] and "MEMENTO_MAX_TOKENS_LIMIT" in err["message"], err
        assert err["field"] == "max_tokens", err
    # the session header path too
    err = error_of(
        client.post(
            "/v1/chat/completions",
            headers={"X-Memento-Session": sid},
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": over},
        ),
        400,
    )
    assert "MEMENTO_MAX_TOKENS_LIMIT" in err["message"]
    assert client.get(f"/v1/sessions/{sid}/messages").json()["messages"] == []


def test_session_count(
    server: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.settings, "max_sessions_per_user", 3)
    for _ in range(3):
        assert client.post("/v1/sessions", json={"persona": "assistant"}).status_code == 201
    err = error_of(client.post("/v1/sessions", json={"persona": "assistant"}), 413)
    assert "sessions per user" in err["message"] and "3" in err["message"], err
    # import counts as a new session too
    sid = client.get("/v1/sessions").json()["sessions"][0]["id"]
    export = client.get(f"/v1/sessions/{sid}/export").json()
    err = error_of(client.post("/v1/sessions/import", json=export), 413)
    assert "sessions per user" in err["message"], err
    assert len(client.get("/v1/sessions").json()["sessions"]) == 3
    # the limit is per user: someone else still can
    _, other = server.new_key()
    with server.client(other) as c:
        assert c.post("/v1/sessions", json={"persona": "assistant"}).status_code == 201
