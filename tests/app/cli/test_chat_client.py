"""app/cli/chat_client.py: the terminal chat's HTTP client against a real server (uvicorn on a free
port, the real model, SQLite), plus its pure parts: SSE parsing, delta text, error mapping."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.server import LiveServer, make_settings

from app.cli.chat_client import ApiError, ChatClient, delta_text, error_from, parse_sse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("chat-client"))) as s:
        yield s


@pytest.fixture
def client(server: LiveServer) -> Iterator[ChatClient]:
    c = ChatClient(server.url)
    yield c
    c.close()


def test_a_turn_through_the_client(client: ChatClient) -> None:
    assert client.health()["status"] == "ok"
    assert {"assistant", "pippa", "cody"} <= {p["id"] for p in client.personas()}
    assert client.persona("pippa")["greeting"]

    session = client.create_session("cody", "window")
    assert session["persona"] == "cody" and session["memory"]["strategy"] == "window"
    assert client.session(session["id"])["id"] == session["id"]

    events = list(client.stream(session["id"], {"content": "Hello there!", "max_tokens": 4}))
    names = [name for name, _ in events]
    assert names[-1] == "done" and "delta" in names, names
    done = events[-1][1]
    reply_id = done["reply"]["id"]
    streamed = "".join(delta_text(data) for name, data in events if name == "delta")
    stored = client.messages(session["id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["id"] == reply_id and stored[1]["content"] == streamed

    ctx = client.context(session["id"], reply_id)
    assert {"persona", "new"} <= {p["kind"] for p in ctx["parts"]}
    assert client.memory(session["id"])["strategy"] == "window"


def test_api_errors_carry_the_servers_message_and_field(client: ChatClient) -> None:
    with pytest.raises(ApiError) as unknown:
        client.create_session("nobody-here", None)
    assert unknown.value.status == 404 and "nobody-here" in str(unknown.value)

    with pytest.raises(ApiError) as bad:
        client.create_session("cody", "no_such_strategy")
    assert bad.value.status == 422 and bad.value.field == "memory.strategy"
    assert "no_such_strategy" in str(bad.value)

    with pytest.raises(ApiError) as missing:  # a streamed request fails before any event
        list(client.stream("ses_doesnotexist", {"content": "hi"}))
    assert missing.value.status == 404 and "ses_doesnotexist" in str(missing.value)


def test_unreachable_server_is_an_api_error() -> None:
    c = ChatClient("http://127.0.0.1:9", timeout=30)
    try:
        with pytest.raises(ApiError) as err:
            c.health()
        assert err.value.status == 0
        assert "cannot reach the server at http://127.0.0.1:9" in str(err.value)
    finally:
        c.close()


def test_parse_sse_handles_events_comments_and_multiline_data() -> None:
    lines = [
        ": keep-alive", "event: delta", 'data: {"text": "Hi"}', "",
        "event: delta", "data: line one", "data: line two", "",
        "event: done", 'data: {"reply": {"id": 7}}', "",
        "data:no space, no blank line at the end",
    ]  # fmt: skip
    assert list(parse_sse(iter(lines))) == [
        ("delta", {"text": "Hi"}),
        ("delta", "line one\nline two"),
        ("done", {"reply": {"id": 7}}),
        ("message", "no space, no blank line at the end"),
    ]


def test_delta_text_of_every_payload_shape() -> None:
    assert delta_text("plain") == "plain"
    assert delta_text({"text": "a"}) == "a"
    assert delta_text({"delta": "b"}) == "b"
    assert delta_text({"content": "c"}) == "c"
    assert delta_text({}) == ""
    assert delta_text(42) == "42"


def test_error_from_reads_the_error_body_or_falls_back_to_text() -> None:
    body = {"error": {"code": "invalid", "message": "k must be >= 1", "field": "memory.k"}}
    err = error_from(httpx.Response(422, json=body))
    assert (err.status, err.field, str(err)) == (422, "memory.k", "k must be >= 1 (memory.k)")
    err = error_from(httpx.Response(502, text="Bad Gateway"))
    assert (err.status, err.field, str(err)) == (502, None, "Bad Gateway")
    assert str(error_from(httpx.Response(500))) == "HTTP 500"
