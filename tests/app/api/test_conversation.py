"""The HTTP API end to end on the real model, SQLite and Chroma: sessions, turns, streaming,
the context inspector, history import, memory editing, export/import."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.server import assert_error, make_settings, sse_events, wait_until

from app.main import create_app

MAX = 12  # keep generation short: the point is the plumbing, not the prose


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("conversation"))
    with TestClient(create_app(settings)) as c:
        yield c


def new_session(client: TestClient, persona: str = "pippa", **memory: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"persona": persona}
    if memory:
        body["memory"] = memory
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def say(client: TestClient, sid: str, content: str, **extra: Any) -> dict[str, Any]:
    r = client.post(
        f"/v1/sessions/{sid}/messages", json={"content": content, "max_tokens": MAX, **extra}
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_healthz_names_model_and_backends(client: TestClient) -> None:
    h = client.get("/healthz").json()
    assert h["status"] == "ok"
    assert "SmolLM2" in h["model_id"]
    assert h["context_window"] >= 2048
    assert h["backend"] == "mlx"
    assert h["store"] == "sqlite"
    assert h["vector"].startswith("chroma")


def test_three_turns_with_pippa(client: TestClient) -> None:
    session = new_session(client)
    sid = session["id"]
    assert session["persona"] == "pippa"
    persona = client.get("/v1/personas/pippa").json()
    assert session["memory"]["strategy"] == persona["memory"]["strategy"]

    turns = [
        say(client, sid, "Hi Pippa! It's dad. I just got back from a walk by the river."),
        say(client, sid, "I saw a heron there. Do you remember what I saw?"),
        say(client, sid, "아빠 왔어. 오늘 뭐 했어?"),
    ]
    for t in turns:
        assert t["message"]["role"] == "user" and t["message"]["status"] == "complete"
        assert t["reply"]["role"] == "assistant" and t["reply"]["status"] == "complete"
        assert t["reply"]["content"].strip()
        u = t["usage"]
        assert 0 < u["completion_tokens"] <= MAX
        assert 0 <= u["cached_tokens"] < u["prompt_tokens"]
        # the prompt the engine saw is exactly the Context the strategy assembled
        ctx = client.get(f"/v1/sessions/{sid}/context/{t['reply']['id']}").json()
        assert ctx["id"] == t["context_id"] == t["reply"]["context_id"]
        assert u["prompt_tokens"] == ctx["total_tokens"] <= ctx["budget"]
        kinds = [p["kind"] for p in ctx["parts"]]
        assert kinds[0] == "persona" and kinds[-1] == "new"
        assert "pinned" in kinds  # pippa's style rules are pinned, not hoped for
        assert ctx["parts"][-1]["messages"][-1]["content"] == t["message"]["content"]
    # KV reuse: turn 2 extends turn 1's prompt
    assert turns[1]["usage"]["cached_tokens"] > 0
    assert turns[2]["usage"]["prompt_tokens"] > turns[0]["usage"]["prompt_tokens"]

    # turn 3 saw turns 1 and 2 verbatim, by id
    ctx3 = client.get(f"/v1/sessions/{sid}/context/{turns[2]['reply']['id']}").json()
    seen = {
        m.get("id")
        for p in ctx3["parts"]
        if p["kind"] in ("recent", "kept", "recalled")
        for m in p["messages"]
    }
    for t in turns[:2]:
        assert {t["message"]["id"], t["reply"]["id"]} <= seen

    stored = client.get(f"/v1/sessions/{sid}/messages").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] * 3
    assert [m["content"] for m in stored[::2]] == [t["message"]["content"] for t in turns]
    assert [m["content"] for m in stored[1::2]] == [t["reply"]["content"] for t in turns]
    assert all(m["status"] == "complete" and m["tokens"] > 0 for m in stored)


def test_streaming_sends_deltas_then_done(client: TestClient) -> None:
    sid = new_session(client, "assistant")["id"]
    with client.stream(
        "POST",
        f"/v1/sessions/{sid}/messages",
        json={"content": "Name a color.", "stream": True, "max_tokens": MAX},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r.iter_lines()))
    names = [e for e, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"}
    text = "".join(d["text"] for e, d in events if e == "delta")
    done = events[-1][1]
    assert done["reply"]["content"] == text and done["reply"]["status"] == "complete"
    assert set(done) == {"message", "reply", "usage", "context_id"}
    stored = client.get(f"/v1/sessions/{sid}/messages").json()["messages"]
    assert stored[-1]["content"] == text


def test_dry_run_context_stores_nothing(client: TestClient) -> None:
    sid = new_session(client, "assistant", strategy="window", k=1)["id"]
    say(client, sid, "My name is Ada.")
    say(client, sid, "I live in Lisbon.")
    before = client.get(f"/v1/sessions/{sid}/messages").json()["messages"]
    ctx = client.post(f"/v1/sessions/{sid}/context", json={"content": "Where do I live?"}).json()
    assert client.get(f"/v1/sessions/{sid}/messages").json()["messages"] == before
    recent = [p for p in ctx["parts"] if p["kind"] == "recent"]
    # window k=1: only the last turn, verbatim with its ids
    assert [m["id"] for m in recent[0]["messages"]] == [m["id"] for m in before[-2:]]
    assert ctx["parts"][-1] == {
        "kind": "new",
        "tokens": ctx["parts"][-1]["tokens"],
        "messages": [
            {
                "id": None,
                "role": "user",
                "content": "Where do I live?",
                "created_at": None,
                "session_id": None,
            }
        ],
        "covers": [],
        "chunks": [],
        "ranked": [],
        "fired": [],  # lore parts' fields (issue 16), empty elsewhere
        "dropped": [],
    }
    assert ctx["total_tokens"] <= ctx["budget"]


def test_messages_are_paged_oldest_first(client: TestClient) -> None:
    sid = new_session(client, "assistant", strategy="buffer")["id"]
    turns = [("user", f"fact number {i}") for i in range(5)]
    ids = client.post(
        f"/v1/sessions/{sid}/history",
        json={"messages": [{"role": r, "content": c} for r, c in turns]},
    ).json()["ids"]
    assert ids == sorted(ids) and len(ids) == 5
    page = client.get(f"/v1/sessions/{sid}/messages", params={"limit": 2}).json()
    assert [m["id"] for m in page["messages"]] == ids[-2:] and page["has_more"]
    older = client.get(
        f"/v1/sessions/{sid}/messages", params={"limit": 10, "before": ids[-2]}
    ).json()
    assert [m["id"] for m in older["messages"]] == ids[:3] and not older["has_more"]


def test_history_import_is_observed_by_memory(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the index is held until the first GET: what it reports then is "not yet indexed"
    recaller = client.app.state.services.chat.memory.recaller  # type: ignore[attr-defined]
    gate = threading.Event()
    observe = recaller.observe

    async def held(*args: Any) -> None:
        await asyncio.to_thread(gate.wait, 60)
        await observe(*args)

    monkeypatch.setattr(recaller, "observe", held)
    sid = new_session(client, "assistant", strategy="vector")["id"]
    history = [
        {
            "role": "user",
            "content": "My sister Mina lives in Busan and keeps bees.",
            "created_at": "2024-03-01T10:00:00Z",
        },
        {"role": "assistant", "content": "Bees in Busan, lovely!"},
        {"role": "user", "content": "I am learning to play the cello."},
        {"role": "assistant", "content": "That is a beautiful instrument."},
    ]
    r = client.post(f"/v1/sessions/{sid}/history", json={"messages": history})
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    stored = client.get(f"/v1/sessions/{sid}/messages").json()["messages"]
    assert [m["id"] for m in stored] == ids
    assert stored[0]["created_at"].startswith("2024-03-01T10:00:00")
    memory = client.get(f"/v1/sessions/{sid}/memory").json()
    assert (memory["items"], memory["indexing"]) == ([], 4)  # the page polls while it is > 0
    gate.set()

    def indexed() -> bool:
        memory = client.get(f"/v1/sessions/{sid}/memory").json()
        return {i["id"] for i in memory["items"]} == set(ids) and memory["indexing"] == 0

    wait_until(indexed, "the imported turns to reach the vector index")
    ctx = client.post(f"/v1/sessions/{sid}/context", json={"content": "Who keeps bees?"}).json()
    shown = [
        m
        for p in ctx["parts"]
        if p["kind"] in ("kept", "recalled", "recent")
        for m in p["messages"]
    ]
    assert ids[0] in {m["id"] for m in shown}


def test_an_imports_summary_backlog_is_worked_off_without_turns(client: TestClient) -> None:
    # one small chunk per observe: 40 imported messages are many observes' work
    memory = {
        "strategy": "summary_buffer",
        "summarizer": "extractive",
        "max_tokens": 64,
        "summary_chunk_tokens": 32,
        "summary_max_chunks": 1,
    }
    sid = new_session(client, "assistant", **memory)["id"]
    history = [
        {"role": role, "content": f"Message {i}: the weather was fine on day {i}."}
        for i in range(40)
        for role in ("user", "assistant")
    ][:40]
    ids = client.post(f"/v1/sessions/{sid}/history", json={"messages": history}).json()["ids"]

    def covered() -> bool:  # everything the recent buffer left behind is in the summary
        covers = set(client.get(f"/v1/sessions/{sid}/memory").json()["summary_covers"])
        return len(covers) > 0 and covers >= set(ids[: len(covers)]) and max(covers) >= ids[30]

    wait_until(covered, "the summary to cover the import's backlog")
    assert len(client.get(f"/v1/sessions/{sid}/messages").json()["messages"]) == 40  # no turn


def test_memory_edit_and_forget(client: TestClient) -> None:
    sid = new_session(client, "assistant", strategy="hybrid")["id"]
    ids = client.post(
        f"/v1/sessions/{sid}/history",
        json={
            "messages": [
                {"role": "user", "content": "My password hint is 'blue whale'."},
                {"role": "assistant", "content": "Noted."},
            ]
        },
    ).json()["ids"]
    wait_until(
        lambda: len(client.get(f"/v1/sessions/{sid}/memory").json()["items"]) == 2,
        "the turns to be indexed",
    )
    r = client.patch(
        f"/v1/sessions/{sid}/memory",
        json={"summary": "The user likes whales.", "pinned": [{"text": "The user is a chef."}]},
    )
    assert r.status_code == 200, r.text
    mem = r.json()
    assert mem["summary"] == "The user likes whales."
    user_pins = [p for p in mem["pinned"] if p["source"] == "user"]
    assert [p["text"] for p in user_pins] == ["The user is a chef."]
    ctx = client.post(f"/v1/sessions/{sid}/context", json={"content": "What do I do?"}).json()
    pinned_text = " ".join(
        m["content"] for p in ctx["parts"] if p["kind"] == "pinned" for m in p["messages"]
    )
    assert "The user is a chef." in pinned_text

    assert client.delete(f"/v1/sessions/{sid}/memory/items/{ids[0]}").status_code == 204
    mem = client.get(f"/v1/sessions/{sid}/memory").json()
    assert ids[0] in mem["forgotten"]
    assert [i["id"] for i in mem["items"]] == [ids[1]]
    ctx = client.post(f"/v1/sessions/{sid}/context", json={"content": "password hint?"}).json()
    shown = {m.get("id") for p in ctx["parts"] for m in p["messages"]}
    assert ids[0] not in shown

    fact_id = user_pins[0]["id"]
    assert client.delete(f"/v1/sessions/{sid}/memory/pinned/{fact_id}").status_code == 204
    mem = client.get(f"/v1/sessions/{sid}/memory").json()
    assert not [p for p in mem["pinned"] if p["source"] == "user"]


def test_patch_rename_and_strategy(client: TestClient) -> None:
    sid = new_session(client, "cody")["id"]
    r = client.patch(f"/v1/sessions/{sid}", json={"title": "Dark lord chats"})
    assert r.status_code == 200 and r.json()["title"] == "Dark lord chats"
    r = client.patch(f"/v1/sessions/{sid}", json={"memory": {"strategy": "window", "k": 3}})
    assert r.status_code == 200, r.text
    assert r.json()["memory"]["strategy"] == "window" and r.json()["memory"]["k"] == 3
    r = client.patch(f"/v1/sessions/{sid}", json={"memory": {"k": 5, "budget_tokens": 900}})
    assert r.json()["memory"] == {"strategy": "window", "k": 5, "budget_tokens": 900}
    ctx = client.post(f"/v1/sessions/{sid}/context", json={"content": "hey"}).json()
    assert ctx["budget"] == 900
    listed = client.get("/v1/sessions").json()["sessions"]
    assert sid in [s["id"] for s in listed]


def test_budget_tokens_reads_and_writes_as_before_its_column(client: TestClient) -> None:
    # a column of the session since schema v9; for clients one of the memory params as before
    r = client.post(
        "/v1/sessions",
        json={"persona": "assistant", "memory": {"strategy": "window", "budget_tokens": 700}},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["memory"]["budget_tokens"] == 700
    assert client.get(f"/v1/sessions/{sid}").json()["memory"]["budget_tokens"] == 700
    # a params-only change of the same strategy keeps it
    r = client.patch(f"/v1/sessions/{sid}", json={"memory": {"k": 4}})
    assert r.json()["memory"]["budget_tokens"] == 700 and r.json()["memory"]["k"] == 4
    ctx = client.post(f"/v1/sessions/{sid}/context", json={"content": "hey"}).json()
    assert ctx["budget"] == 700
    exported = client.get(f"/v1/sessions/{sid}/export").json()
    assert exported["session"]["params"]["budget_tokens"] == 700
    copy = client.post("/v1/sessions/import", json=exported)
    assert copy.status_code == 201 and copy.json()["memory"]["budget_tokens"] == 700
    # another strategy takes its own params only: the budget goes unless given again
    r = client.patch(f"/v1/sessions/{sid}", json={"memory": {"strategy": "buffer"}})
    assert r.json()["memory"].get("budget_tokens") is None


def test_export_import_roundtrip(client: TestClient) -> None:
    sid = new_session(client, "assistant", strategy="summary_buffer")["id"]
    say(client, sid, "Remember: the meeting is on Friday.")
    client.patch(f"/v1/sessions/{sid}/memory", json={"pinned": [{"text": "Meeting Friday"}]})
    export = client.get(f"/v1/sessions/{sid}/export").json()
    assert export["format"] == "memento.session"
    assert export["session"]["persona"] == "assistant"
    assert len(export["messages"]) == 2

    r = client.post("/v1/sessions/import", json=export)
    assert r.status_code == 201, r.text
    copy = r.json()
    assert copy["id"] != sid and copy["memory"]["strategy"] == "summary_buffer"
    msgs = client.get(f"/v1/sessions/{copy['id']}/messages").json()["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [
        (m["role"], m["content"]) for m in export["messages"]
    ]
    mem = client.get(f"/v1/sessions/{copy['id']}/memory").json()
    assert "Meeting Friday" in [p["text"] for p in mem["pinned"]]


def test_delete_session(client: TestClient) -> None:
    sid = new_session(client, "assistant")["id"]
    say(client, sid, "hello")
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert_error(client.get(f"/v1/sessions/{sid}"), 404)
    assert_error(client.get(f"/v1/sessions/{sid}/messages"), 404)


def test_web_page_is_served_beside_the_api(client: TestClient) -> None:
    from app.main import WEB_DIR

    if not (WEB_DIR / "index.html").is_file():
        pytest.skip("no web page in app/web yet")
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/healthz").json()["status"] == "ok"  # the mount does not shadow routes


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/healthz", "get"),
        ("/v1/personas", "get"),
        ("/v1/personas", "post"),
        ("/v1/personas/{persona_id}", "get"),
        ("/v1/sessions", "post"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{session_id}", "patch"),
        ("/v1/sessions/{session_id}", "delete"),
        ("/v1/sessions/{session_id}/messages", "post"),
        ("/v1/sessions/{session_id}/messages", "get"),
        ("/v1/sessions/{session_id}/history", "post"),
        ("/v1/sessions/{session_id}/context", "post"),
        ("/v1/sessions/{session_id}/context/{message_id}", "get"),
        ("/v1/sessions/{session_id}/memory", "get"),
        ("/v1/sessions/{session_id}/memory", "patch"),
        ("/v1/models", "get"),
        ("/v1/models/{model_id}", "get"),
        ("/v1/chat/completions", "post"),
    ]:
        assert method in paths.get(path, {}), (method, path)
    post = paths["/v1/sessions/{session_id}/messages"]["post"]
    assert "ErrorBody" in str(post["responses"]["404"])
