"""Every error path of the API answers {"error": {code, message, field}} with a fitting status,
and a rejected request stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support.server import assert_error, make_settings

from app.main import create_app

LIMITS = {
    "max_message_chars": 400,
    "max_body_bytes": 20_000,
    "max_history_import": 4,
    "max_tokens_limit": 32,
    "max_sessions_per_user": 50,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("errors"), **LIMITS)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def sid(client: TestClient) -> str:
    r = client.post("/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "buffer"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def messages(client: TestClient, sid: str) -> list[dict]:
    return client.get(f"/v1/sessions/{sid}/messages").json()["messages"]


# -- 404 ----------------------------------------------------------------------------------------
def test_unknown_session_everywhere(client: TestClient) -> None:
    missing = "ses_doesnotexist"
    for method, path, body in [
        ("GET", f"/v1/sessions/{missing}", None),
        ("PATCH", f"/v1/sessions/{missing}", {"title": "x"}),
        ("DELETE", f"/v1/sessions/{missing}", None),
        ("POST", f"/v1/sessions/{missing}/messages", {"content": "hi"}),
        ("GET", f"/v1/sessions/{missing}/messages", None),
        (
            "POST",
            f"/v1/sessions/{missing}/history",
            {"messages": [{"role": "user", "content": "x"}]},
        ),
        ("POST", f"/v1/sessions/{missing}/context", {"content": "hi"}),
        ("PUT", f"/v1/sessions/{missing}/draft", {"content": "hi"}),
        ("GET", f"/v1/sessions/{missing}/memory", None),
        ("GET", f"/v1/sessions/{missing}/export", None),
    ]:
        r = client.request(method, path, json=body)
        err = assert_error(r, 404, "session_id")
        assert missing in err["message"], (method, path)
    r = client.post(
        "/v1/chat/completions",
        headers={"X-Memento-Session": missing},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert_error(r, 404, "session_id")


def test_unknown_persona_and_message(client: TestClient, sid: str) -> None:
    err = assert_error(client.post("/v1/sessions", json={"persona": "nobody"}), 404, "persona")
    assert "nobody" in err["message"]
    assert_error(client.get("/v1/personas/nobody"), 404, "persona")
    assert_error(client.get(f"/v1/sessions/{sid}/context/999999"), 404)
    assert_error(client.delete(f"/v1/sessions/{sid}/memory/items/999999"), 404, "message_id")
    assert_error(client.get("/v1/no/such/route"), 404)


# -- 422 ----------------------------------------------------------------------------------------
def test_invalid_fields_are_named(client: TestClient, sid: str) -> None:
    url = f"/v1/sessions/{sid}/messages"
    assert_error(client.post(url, json={}), 422, "content")
    assert_error(client.post(url, json={"content": 5}), 422, "content")
    assert_error(client.post(url, json={"content": ""}), 422, "content")
    assert_error(client.post(url, json={"content": "   "}), 422, "content")
    assert_error(client.post(url, json={"content": "hi", "temperature": 9}), 422, "temperature")
    assert_error(client.post(url, json={"content": "hi", "top_p": 0}), 422, "top_p")
    for name, bad in (
        ("frequency_penalty", 2.5),
        ("presence_penalty", -2.5),
        ("repetition_penalty", 0),
        ("repetition_penalty", 3),
    ):
        body = {"content": "hi", name: bad}
        assert_error(client.post(url, json=body), 422, name)
        oai = {"messages": [{"role": "user", "content": "hi"}], name: bad}
        # the OpenAI-compatible route answers OpenAI's 400 where ours answer 422
        err = assert_error(client.post("/v1/chat/completions", json=oai), 400, name)
        assert err["param"] == name and err["type"] == "invalid_request_error"
    # an empty stop string (found by the fuzzer: it was a 503 from the engine)
    assert_error(client.post(url, json={"content": "hi", "stop": ["x", ""]}), 422, "stop.1")
    err = assert_error(
        client.post(url, json={"content": "hi", "max_tokens": 33}), 422, "max_tokens"
    )
    assert "32" in err["message"]
    r = client.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 422, "body")
    # malformed JSON says where it breaks
    bad = b'{"content": "hi",\n "max_tokens": oops}'
    r = client.post(url, content=bad, headers={"content-type": "application/json"})
    err = assert_error(r, 422, "body")
    assert "line 2, column 16" in err["message"], err
    # JSON without its content-type names the header, not "a valid dictionary"
    for headers in ({}, {"content-type": "text/plain"}):
        r = client.post(url, content=b'{"content": "hi"}', headers=headers)
        err = assert_error(r, 422, "content-type")
        assert "Content-Type: application/json" in err["message"], err
    assert messages(client, sid) == []  # nothing was stored by any of these
    assert_error(client.get(url, params={"limit": 0}), 422, "limit")


def test_a_draft_is_checked_as_a_message_is(client: TestClient, sid: str) -> None:
    url = f"/v1/sessions/{sid}/draft"
    assert_error(client.put(url, json={"content": 5}), 422, "content")
    err = assert_error(client.put(url, json={"content": "hi", "max_tokens": 33}), 422, "max_tokens")
    assert "32" in err["message"]
    assert_error(client.put(url, json={"content": "hi", "max_tokens": 0}), 422, "max_tokens")
    err = assert_error(client.put(url, json={"content": "x" * 401}), 413, "content")
    assert "MEMENTO_MAX_MESSAGE_CHARS" in err["message"]
    # a box the user emptied is a draft too: the next prompt's head is warmed
    for content in ("", "   ", "what did I"):
        r = client.put(url, json={"content": content})
        assert r.status_code == 202, r.text
        assert r.json()["warming"] is True and r.json()["max_tokens"] >= 1, r.json()
    assert messages(client, sid) == []  # a draft is never stored


def test_invalid_memory_config(client: TestClient, sid: str) -> None:
    err = assert_error(
        client.post(
            "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "telepathy"}}
        ),
        422,
        "memory.strategy",
    )
    assert "telepathy" in err["message"] and "window" in err["message"]
    assert_error(
        client.post(
            "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "window", "k": 0}}
        ),
        422,
        "memory.k",
    )
    assert_error(
        client.post(
            "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "window", "kk": 2}}
        ),
        422,
        "memory.kk",
    )
    assert_error(
        client.patch(f"/v1/sessions/{sid}", json={"memory": {"strategy": "window", "k": "x"}}),
        422,
        "memory.k",
    )
    assert client.get(f"/v1/sessions/{sid}").json()["memory"]["strategy"] == "buffer"
    assert_error(
        client.post("/v1/sessions", json={"persona": "assistant", "memory": {"budget_tokens": 3}}),
        422,
        "memory.budget_tokens",
    )


def test_history_import_validation(client: TestClient, sid: str) -> None:
    url = f"/v1/sessions/{sid}/history"
    assert_error(client.post(url, json={"messages": []}), 422, "messages")
    assert_error(
        client.post(url, json={"messages": [{"role": "robot", "content": "x"}]}),
        422,
        "messages.0.role",
    )
    assert_error(
        client.post(
            url,
            json={
                "messages": [
                    {"role": "user", "content": "ok"},
                    {"role": "user", "content": "x" * 401},
                ]
            },
        ),
        413,
        "messages.1.content",
    )
    assert messages(client, sid) == []


def test_persona_upload_errors(client: TestClient) -> None:
    r = client.post(
        "/v1/personas",
        content=b"id: bad\nname: B\nsystem_prompt: hi\ncolour: red\n",
        headers={"content-type": "application/yaml"},
    )
    err = assert_error(r, 422, "colour")
    assert "unknown field" in err["message"]
    r = client.post("/v1/personas", json={"spec": "chara_card_v2", "data": {"name": 3}})
    assert_error(r, 422)
    r = client.post("/v1/personas", content=b"{oops", headers={"content-type": "application/json"})
    assert_error(r, 422, "body")
    # a well-formed card is accepted, and its id cannot be taken twice
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Captain Rye",
            "description": "A retired sea captain.",
            "personality": "gruff, kind",
            "scenario": "A harbour tavern.",
            "first_mes": "Ahoy.",
            "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Ahoy there.",
            "system_prompt": "",
            "post_history_instructions": "",
            "character_book": {
                "entries": [
                    {
                        "keys": ["ship"],
                        "content": "His ship is the Gull.",
                        "constant": True,
                        "enabled": True,
                    }
                ]
            },
        },
    }
    r = client.post("/v1/personas", json=card)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "Captain Rye" and created["source"] == "uploaded"
    # the book is kept whole (the lore scanner reads it), not copied into pinned facts
    assert created["pinned_facts"] == []
    assert created["character_book"]["entries"][0]["content"] == "His ship is the Gull."
    err = assert_error(client.post("/v1/personas", json=card), 409, "id")
    assert f"PUT /v1/personas/{created['id']}" in err["message"]
    ids = [p["id"] for p in client.get("/v1/personas").json()["personas"]]
    assert created["id"] in ids and {"assistant", "pippa", "cody"} <= set(ids)
    s = client.post("/v1/sessions", json={"persona": created["id"]})
    assert s.status_code == 201


# -- 413 ----------------------------------------------------------------------------------------
def test_too_large(client: TestClient, sid: str) -> None:
    url = f"/v1/sessions/{sid}/messages"
    err = assert_error(client.post(url, json={"content": "x" * 401}), 413, "content")
    assert "400" in err["message"] and "MEMENTO_MAX_MESSAGE_CHARS" in err["message"]
    body = json.dumps({"content": "y" * 25_000}).encode()
    assert_error(
        client.post(url, content=body, headers={"content-type": "application/json"}), 413, "body"
    )

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"content": "'
        for _ in range(30):
            yield b"z" * 1000
        yield b'"}'

    r = client.post(url, content=chunked(), headers={"content-type": "application/json"})
    assert_error(r, 413, "body")
    many = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    assert_error(
        client.post(f"/v1/sessions/{sid}/history", json={"messages": many}), 413, "messages"
    )
    assert messages(client, sid) == []


def test_context_overflow_is_413(client: TestClient) -> None:
    r = client.post(
        "/v1/sessions",
        json={"persona": "assistant", "memory": {"strategy": "buffer", "budget_tokens": 64}},
    )
    sid = r.json()["id"]
    r = client.post(f"/v1/sessions/{sid}/messages", json={"content": "word " * 70})
    err = assert_error(r, 413, "content")
    assert "64" in err["message"]
    assert_error(
        client.post(f"/v1/sessions/{sid}/context", json={"content": "hi " * 70}), 413, "content"
    )
    assert messages(client, sid) == []


def test_openai_errors(client: TestClient) -> None:
    url = "/v1/chat/completions"
    assert_error(client.post(url, json={"messages": []}), 400, "messages")
    assert_error(
        client.post(url, json={"messages": [{"role": "wizard", "content": "x"}]}),
        400,
        "messages.0.role",
    )
    assert_error(
        client.post(url, json={"messages": [{"role": "tool", "content": "x"}]}),
        400,
        "messages.0.role",
    )
    assert_error(
        client.post(url, json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 100}),
        400,
        "max_tokens",
    )
