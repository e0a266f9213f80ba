"""ChatService behaviour over real HTTP (uvicorn on a free port, the real model): turns of one
session are serialized, a busy session answers 409 when it cannot wait, and a client that
disconnects mid-stream leaves its partial reply stored as `interrupted`, and a streaming reply is
checkpointed while it streams yet stored exactly as streamed when it completes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from support.server import LiveServer, assert_error, make_settings, sse_events, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("chat"))) as s:
        yield s


def new_session(server: LiveServer) -> str:
    r = httpx.post(
        f"{server.url}/v1/sessions",
        json={"persona": "assistant", "memory": {"strategy": "buffer"}},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def messages(server: LiveServer, sid: str) -> list[dict]:
    r = httpx.get(f"{server.url}/v1/sessions/{sid}/messages", timeout=60)
    return r.json()["messages"]


def test_concurrent_posts_to_one_session_are_serialized(server: LiveServer) -> None:
    sid = new_session(server)
    results: dict[str, dict] = {}

    def post(content: str) -> None:
        r = httpx.post(
            f"{server.url}/v1/sessions/{sid}/messages",
            json={"content": content, "max_tokens": 12},
            timeout=600,
        )
        results[content] = {"status": r.status_code, "body": r.json()}

    threads = [threading.Thread(target=post, args=(c,)) for c in ("First: hello.", "Second: hi.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [v["status"] for v in results.values()] == [200, 200], results
    turns = sorted((v["body"] for v in results.values()), key=lambda b: b["message"]["id"])
    stored = messages(server, sid)
    # two whole turns, never interleaved: user, its reply, user, its reply
    assert [m["id"] for m in stored] == [
        turns[0]["message"]["id"],
        turns[0]["reply"]["id"],
        turns[1]["message"]["id"],
        turns[1]["reply"]["id"],
    ]
    assert [m["status"] for m in stored] == ["complete"] * 4
    # the later turn was assembled after the earlier one was stored: it saw it
    ctx = httpx.get(
        f"{server.url}/v1/sessions/{sid}/context/{turns[1]['reply']['id']}", timeout=60
    ).json()
    seen = {m.get("id") for p in ctx["parts"] for m in p["messages"]}
    assert {turns[0]["message"]["id"], turns[0]["reply"]["id"]} <= seen


def test_busy_session_answers_409_when_it_cannot_wait(server: LiveServer) -> None:
    sid = new_session(server)
    settings = server.services.settings
    old_wait = settings.session_wait_seconds
    settings.session_wait_seconds = 0
    try:
        with (
            httpx.Client(timeout=600) as client,
            client.stream(
                "POST",
                f"{server.url}/v1/sessions/{sid}/messages",
                json={
                    "content": "Tell me a long story about a fox.",
                    "stream": True,
                    "max_tokens": 24,
                },
            ) as stream,
        ):
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event: delta"):
                    break  # generating now: the session lock is held
            busy = httpx.post(
                f"{server.url}/v1/sessions/{sid}/messages",
                json={"content": "me too"},
                timeout=60,
            )
            err = assert_error(busy, 409, "session_id")
            assert "busy" in err["message"]
            # another session is not blocked by this one
            other = new_session(server)
            ok = httpx.post(
                f"{server.url}/v1/sessions/{other}/context", json={"content": "hi"}, timeout=60
            )
            assert ok.status_code == 200
            for _ in lines:
                pass
    finally:
        settings.session_wait_seconds = old_wait
    stored = messages(server, sid)
    assert [m["content"] for m in stored if m["role"] == "user"] == [
        "Tell me a long story about a fox."
    ]


def test_disconnect_stores_interrupted_partial_reply(server: LiveServer) -> None:
    sid = new_session(server)
    first_delta = ""
    with (
        httpx.Client(timeout=600) as client,
        client.stream(
            "POST",
            f"{server.url}/v1/sessions/{sid}/messages",
            json={
                "content": "Write a very long essay about the sea.",
                "stream": True,
                "max_tokens": 400,
            },
        ) as stream,
    ):
        for line in stream.iter_lines():
            if line.startswith("data:") and '"text"' in line:
                import json

                first_delta = json.loads(line[5:])["text"]
                break
    # the client is gone; the server notices, cancels generation and stores what it had
    assert first_delta

    def interrupted() -> dict | None:
        stored = messages(server, sid)
        reply = stored[-1]
        return reply if reply["status"] == "interrupted" else None

    reply = wait_until(interrupted, "the reply to be stored as interrupted", timeout=120)
    assert reply["role"] == "assistant"
    assert reply["content"].startswith(first_delta)
    assert 0 < reply["tokens"] < 400
    # the session is free again and the next turn works
    r = httpx.post(
        f"{server.url}/v1/sessions/{sid}/messages",
        json={"content": "Short answer: hi?", "max_tokens": 8},
        timeout=600,
    )
    assert r.status_code == 200 and r.json()["reply"]["status"] == "complete"


def test_checkpointed_reply_is_stored_exactly_as_streamed(server: LiveServer) -> None:
    settings = server.services.settings
    old_interval = settings.reply_checkpoint_seconds
    # checkpoint as often as writes finish: the most chances for one to race the final commit
    settings.reply_checkpoint_seconds = 0
    sid = new_session(server)
    deltas: list[str] = []
    done: dict | None = None
    checkpoint: dict | None = None

    def written() -> dict | None:
        reply = messages(server, sid)[-1]
        return reply if reply["content"] or reply["status"] != "pending" else None

    try:
        with (
            httpx.Client(timeout=600) as client,
            client.stream(
                "POST",
                f"{server.url}/v1/sessions/{sid}/messages",
                json={
                    "content": "Write a very long essay about the sea.",
                    "stream": True,
                    "max_tokens": 160,
                    "temperature": 0,
                },
            ) as stream,
        ):
            for event, data in sse_events(stream.iter_lines()):
                if event == "delta":
                    deltas.append(data["text"])
                    if len(deltas) == 8:  # mid-reply: its text so far reaches the database
                        checkpoint = wait_until(written, "a checkpoint of the reply")
                else:
                    assert event == "done", (event, data)
                    done = data
    finally:
        settings.reply_checkpoint_seconds = old_interval
    assert done is not None and checkpoint is not None
    streamed = "".join(deltas)
    assert checkpoint["content"] and streamed.startswith(checkpoint["content"])
    assert checkpoint["status"] in ("pending", "complete"), checkpoint
    # the final write is the last one: exactly the streamed text, with its own token count
    assert done["reply"]["content"] == streamed
    expected_tokens = server.services.engine.count_message(
        {"role": "assistant", "content": streamed}
    )
    # the next turn starts once the reply is stored (the session lock): nothing lands after
    r = httpx.post(
        f"{server.url}/v1/sessions/{sid}/messages",
        json={"content": "Thanks!", "max_tokens": 4},
        timeout=600,
    )
    assert r.status_code == 200, r.text
    stored = messages(server, sid)[1]
    assert stored["id"] == done["reply"]["id"]
    assert (stored["status"], stored["content"]) == ("complete", streamed)
    assert stored["tokens"] == done["reply"]["tokens"] == expected_tokens


def test_a_fact_two_turns_back_is_answered(server: LiveServer) -> None:
    """Issue 12: with the fact in the window, the real model names it (greedy), and neither the
    reply nor what is stored speaks for the user."""
    r = httpx.post(f"{server.url}/v1/sessions", json={"persona": "pippa"}, timeout=60)
    sid = r.json()["id"]
    url = f"{server.url}/v1/sessions/{sid}/messages"
    told = {"content": "We adopted a kitten last weekend. We named her Mochi.", "temperature": 0}
    assert httpx.post(url, json={**told, "max_tokens": 30}, timeout=600).status_code == 200
    asked = {"content": "What is the name of our kitten?", "temperature": 0, "max_tokens": 30}
    reply = httpx.post(url, json=asked, timeout=600).json()["reply"]["content"]
    assert "Mochi" in reply
    for m in messages(server, sid):
        assert "user:" not in m["content"].lower() and "\n아빠:" not in m["content"]
