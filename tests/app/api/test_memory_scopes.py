"""Memory across sessions through the HTTP API of a live server (real model, SQLite, Chroma):
scope rules with two users and two personas, the relationship part, the returning greeting,
forgetting and deleting that reach every scope, and the relationship's own routes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import LiveServer, assert_error, make_settings, wait_until

from memory.strategies._parts import SCOPE_HEADER

FACTS = [
    ("user", "My cat is called Jimmi and she sleeps on my keyboard."),
    ("assistant", "Jimmi sounds adorable! A keyboard is a warm bed."),
    ("user", "I am allergic to peanuts, so no satay for me."),
    ("assistant", "Got it, no peanuts for you."),
    ("user", "Next month I am flying to Lisbon for a writing workshop."),
    ("assistant", "Lisbon! Bring me back a story."),
]
QUESTION = "What is the name of my cat?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("scopes")
    with LiveServer(make_settings(data, auth="required")) as s:
        yield s


def user(server: LiveServer, name: str) -> httpx.Client:
    _, key = server.new_key(f"{name}-{secrets.token_hex(3)}")
    return server.client(key)


def session(c: httpx.Client, persona: str = "pippa", **memory: Any) -> dict[str, Any]:
    body = {"persona": persona, "memory": {"strategy": "vector", "buffer_tokens": 0, **memory}}
    r = c.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def told(c: httpx.Client, persona: str = "pippa", **memory: Any) -> tuple[str, list[int]]:
    """A session in which the user told FACTS; its id and the message ids."""
    sid = session(c, persona, **memory)["id"]
    r = c.post(
        f"/v1/sessions/{sid}/history",
        json={"messages": [{"role": ro, "content": t} for ro, t in FACTS]},
    )
    assert r.status_code == 201, r.text
    return sid, r.json()["ids"]


def context(c: httpx.Client, sid: str, content: str = QUESTION) -> dict[str, Any]:
    r = c.post(f"/v1/sessions/{sid}/context", json={"content": content})
    assert r.status_code == 200, r.text
    return r.json()


def part(ctx: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((p for p in ctx["parts"] if p["kind"] == kind), None)


def recalled(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The recalled turns, kept or found anew (a session's first finds go to both parts)."""
    return [m for p in ctx["parts"] if p["kind"] in ("kept", "recalled") for m in p["messages"]]


def recalled_from(ctx: dict[str, Any], sid: str) -> list[int]:
    return [m["id"] for m in recalled(ctx) if m["session_id"] == sid]


def test_a_new_session_with_her_remembers_the_last_one(server: LiveServer) -> None:
    dad = user(server, "dad")
    first, ids = told(dad)
    assert dad.get(f"/v1/sessions/{first}").json()["greeting"].startswith("아빠, 왔어?")
    new = session(dad)
    # she greets him as someone she knows, not with her first-meeting line
    assert new["greeting"].startswith("아빠 왔다!")
    ctx = context(dad, new["id"])
    assert ids[0] in recalled_from(ctx, first)  # "My cat is called Jimmi" crossed sessions
    shown_in = next(p for p in ctx["parts"] if any(m["id"] == ids[0] for m in p["messages"] or []))
    line = next(m for m in shown_in["messages"] if m["id"] == ids[0])
    assert "Jimmi" in line["content"] and line["session_id"] == first
    # then, not now: in its part, the earlier conversations' notes open with their header
    then = [m for m in shown_in["messages"] if m["session_id"]]
    assert then[0]["content"].startswith(SCOPE_HEADER)
    # the relationship part: the gist of the first session, with where it came from
    rel = part(ctx, "relationship")
    assert rel is not None and rel["tokens"] > 0
    assert rel["messages"][0]["session_id"] == first
    assert "Jimmi" in rel["messages"][0]["content"]
    kinds = [p["kind"] for p in ctx["parts"]]
    assert kinds.index("relationship") < min(
        kinds.index(k) for k in ("kept", "recalled") if k in kinds
    )
    assert ctx["total_tokens"] <= ctx["budget"]


def test_a_session_that_does_not_recall_is_indexed_for_the_next_ones(
    server: LiveServer,
) -> None:
    dad = user(server, "dad")
    created = dad.post(
        "/v1/sessions", json={"persona": "pippa", "memory": {"strategy": "token_buffer"}}
    )
    first = created.json()["id"]
    r = dad.post(
        f"/v1/sessions/{first}/history",
        json={"messages": [{"role": ro, "content": t} for ro, t in FACTS]},
    )
    ids = r.json()["ids"]
    # embedded in the background as it is stored: the next session's first turn does not
    # wait for it (it would embed the whole session on the clock)
    wait_until(
        lambda: (
            {i["id"] for i in dad.get(f"/v1/sessions/{first}/memory").json()["items"]} >= set(ids)
        ),
        "a token_buffer session's turns to be indexed",
    )
    assert ids[0] in recalled_from(context(dad, session(dad)["id"]), first)


def test_scope_rules(server: LiveServer) -> None:
    dad, other = user(server, "dad2"), user(server, "stranger")
    first, ids = told(dad)
    # scope "session": nothing from beyond the session
    alone = context(dad, session(dad, scope="session")["id"])
    assert part(alone, "relationship") is None and recalled_from(alone, first) == []
    # another persona: not by default, yes when the user opts into the user-wide scope
    assistant = context(dad, session(dad, "assistant")["id"])
    assert recalled_from(assistant, first) == []
    wide = context(dad, session(dad, "assistant", scope="user")["id"])
    assert ids[0] in recalled_from(wide, first)
    # another user: never, whatever scope they choose
    for scope in ("persona", "user"):
        theirs = context(other, session(other, scope=scope)["id"])
        assert recalled_from(theirs, first) == []
        assert part(theirs, "relationship") is None
        assert all("Jimmi" not in m["content"] for p in theirs["parts"] for m in p["messages"])
    assert_error(other.get(f"/v1/sessions/{first}"), 404)
    assert first not in [s["id"] for s in other.get("/v1/relationships/pippa").json()["sessions"]]


def test_forget_and_delete_reach_every_scope(server: LiveServer) -> None:
    dad = user(server, "dad3")
    first, ids = told(dad)
    new = session(dad)["id"]
    assert ids[0] in recalled_from(context(dad, new), first)
    # forgetting the recalled turn from the new session forgets it where it lives
    r = dad.delete(f"/v1/sessions/{new}/memory/items/{ids[0]}")
    assert r.status_code == 204, r.text
    assert ids[0] in dad.get(f"/v1/sessions/{first}/memory").json()["forgotten"]
    ctx = context(dad, new)
    assert ids[0] not in recalled_from(ctx, first)
    rel = part(ctx, "relationship")
    assert rel is None or all("Jimmi" not in m["content"] for m in rel["messages"])
    # deleting the first session takes its turns and its gist out of every scope
    assert dad.delete(f"/v1/sessions/{first}").status_code == 204
    ctx = context(dad, new, "Where am I flying next month?")
    assert recalled_from(ctx, first) == []
    assert part(ctx, "relationship") is None
    gists = dad.get("/v1/relationships/pippa").json()["gists"]
    assert all(g["session_id"] != first for g in gists)


def test_relationship_facts_wipe_export_import(server: LiveServer) -> None:
    dad = user(server, "dad4")
    first, _ = told(dad)
    r = dad.post(
        "/v1/relationships/pippa/facts",
        json={
            "text": "아빠 is allergic to cats' hair but loves Jimmi anyway.",
            "session_id": first,
        },
    )
    assert r.status_code == 201, r.text
    rel = r.json()
    assert [f["session_id"] for f in rel["facts"]] == [first]
    assert [s["id"] for s in rel["sessions"]] == [first]
    fresh = session(dad)["id"]
    lines = part(context(dad, fresh), "relationship")
    assert lines is not None and "loves Jimmi anyway" in lines["messages"][0]["content"]
    exported = dad.get("/v1/relationships/pippa/export").json()
    assert exported["format"] == "memento.relationship/1" and len(exported["facts"]) == 1
    # a wipe: no facts, no gists, no turn of before recalled across sessions
    assert dad.delete("/v1/relationships/pippa").status_code == 204
    ctx = context(dad, session(dad)["id"])
    assert part(ctx, "relationship") is None and recalled_from(ctx, first) == []
    # the export brings the facts and gists back
    r = dad.post("/v1/relationships/import", json=exported)
    assert r.status_code == 200, r.text
    assert len(r.json()["facts"]) == 1 and all(g["edited"] for g in r.json()["gists"])
    # a fact can be forgotten
    fact = r.json()["facts"][0]["id"]
    assert dad.delete(f"/v1/relationships/pippa/facts/{fact}").status_code == 204
    assert_error(dad.delete(f"/v1/relationships/pippa/facts/{fact}"), 404, "fact_id")


def test_bad_inputs_name_the_field(server: LiveServer) -> None:
    dad = user(server, "dad5")
    r = dad.post("/v1/sessions", json={"persona": "pippa", "memory": {"scope": "everyone"}})
    assert_error(r, 422, "memory.scope")
    r = dad.post("/v1/sessions", json={"persona": "pippa", "memory": {"relationship_tokens": -1}})
    assert_error(r, 422, "memory.relationship_tokens")
    sid = session(dad)["id"]
    r = dad.patch(f"/v1/sessions/{sid}", json={"memory": {"scope": 3}})
    assert_error(r, 422, "memory.scope")
    assert_error(dad.get("/v1/relationships/nobody"), 404, "persona_id")
    assert_error(dad.post("/v1/relationships/pippa/facts", json={"text": ""}), 422, "text")
    assert_error(
        dad.post("/v1/relationships/pippa/facts", json={"text": "x", "session_id": "ses_nope"}),
        404,
        "session_id",
    )
    r = dad.post("/v1/relationships/import", json={"format": "other", "persona": "pippa"})
    assert_error(r, 422, "format")
    r = dad.patch(
        "/v1/relationships/pippa", json={"facts": [{"text": f"fact {i}"} for i in range(201)]}
    )
    assert_error(r, 422, "facts")
    r = dad.patch(
        "/v1/relationships/pippa", json={"facts": [{"text": f"fact {i}"} for i in range(200)]}
    )
    assert r.status_code == 200 and len(r.json()["facts"]) == 200
    assert_error(dad.post("/v1/relationships/pippa/facts", json={"text": "one more"}), 413, "facts")
