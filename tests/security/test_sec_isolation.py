"""Two users, every resource: one user never sees, changes or learns of the other's things.

A reaches B's session only through its id; every route given that id answers exactly as for
an id that never existed (404, same message), and B's data is unchanged afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support.server import LiveServer, error_of, make_settings

from memory.types import RECALLED_KINDS, SessionInfo

SECRET_TURNS = [
    ("user", "My locker code at the gym is 4711, please remember it."),
    ("assistant", "Got it: your gym locker code is 4711."),
    ("user", "My dog is called Biscuit and she is afraid of thunderstorms."),
    ("assistant", "Poor Biscuit! Thunderstorms can be scary for dogs."),
    ("user", "I am planning a surprise trip to Lisbon for my sister in May."),
    ("assistant", "Lisbon in May sounds lovely; your sister will be thrilled."),
]
QUERY = "What is my gym locker code?"


@dataclass
class Owner:
    user_id: str
    key: str
    client: httpx.Client
    session: str
    message_ids: list[int]
    reply_id: int


def wait_indexed(client: httpx.Client, sid: str, n: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        items = client.get(f"/v1/sessions/{sid}/memory").json()["items"]
        if len(items) >= n:
            return
        assert time.monotonic() < deadline, f"session {sid} not indexed: {len(items)} of {n}"
        time.sleep(0.3)


def make_owner(server: LiveServer, name: str) -> Owner:
    user_id, key = server.new_key(f"{name}-{secrets.token_hex(3)}")
    c = server.client(key)
    r = c.post(
        "/v1/sessions",
        json={
            "persona": "assistant",
            "title": f"{name}'s diary",
            "memory": {"strategy": "vector", "buffer_tokens": 0},
        },
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r = c.post(
        f"/v1/sessions/{sid}/history",
        json={"messages": [{"role": ro, "content": t} for ro, t in SECRET_TURNS]},
    )
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    r = c.post(f"/v1/sessions/{sid}/messages", json={"content": "Hello again!", "max_tokens": 3})
    assert r.status_code == 200, r.text
    turn = r.json()
    ids += [turn["message"]["id"], turn["reply"]["id"]]
    r = c.patch(
        f"/v1/sessions/{sid}/memory",
        json={
            "summary": f"{name} shared private things.",
            "pinned": [{"text": f"{name}'s locker code is 4711"}],
        },
    )
    assert r.status_code == 200, r.text
    wait_indexed(c, sid, len(SECRET_TURNS))
    return Owner(user_id, key, c, sid, ids, turn["reply"]["id"])


@pytest.fixture(scope="module")
def alice(server: LiveServer) -> Any:
    owner = make_owner(server, "alice")
    yield owner
    owner.client.close()


@pytest.fixture(scope="module")
def bob(server: LiveServer) -> Any:
    owner = make_owner(server, "bob")
    yield owner
    owner.client.close()


def snapshot(o: Owner) -> dict[str, Any]:
    c, sid = o.client, o.session
    return {
        "session": c.get(f"/v1/sessions/{sid}").json(),
        "messages": c.get(f"/v1/sessions/{sid}/messages", params={"limit": 500}).json(),
        "memory": c.get(f"/v1/sessions/{sid}/memory").json(),
        "export": c.get(f"/v1/sessions/{sid}/export").json(),
    }


def probes(sid: str, message_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Every session-scoped route, aimed at `sid` (reads and writes)."""
    base = f"/v1/sessions/{sid}"
    return [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"title": "pwned", "memory": {"strategy": "buffer"}}}),
        ("GET", f"{base}/export", {}),
        ("GET", f"{base}/messages", {}),
        ("POST", f"{base}/messages", {"json": {"content": "hi", "max_tokens": 2}}),
        ("POST", f"{base}/messages", {"json": {"content": "hi", "max_tokens": 2, "stream": True}}),
        ("POST", f"{base}/history", {"json": {"messages": [{"role": "user", "content": "x"}]}}),
        ("POST", f"{base}/context", {"json": {"content": QUERY}}),
        ("GET", f"{base}/context/{message_id}", {}),
        ("GET", f"{base}/memory", {}),
        ("PATCH", f"{base}/memory", {"json": {"summary": "pwned", "pinned": []}}),
        ("DELETE", f"{base}/memory/items/{message_id}", {}),
        ("DELETE", f"{base}/memory/pinned/whatever", {}),
        ("DELETE", f"{base}/memory", {}),
        ("DELETE", base, {}),
        (
            "POST",
            "/v1/chat/completions",
            {
                "json": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                "headers": {"X-Memento-Session": sid},
            },
        ),
        (
            "POST",
            "/v1/chat/completions",
            {
                "json": {
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 2,
                    "stream": True,
                },
                "headers": {"X-Memento-Session": sid},
            },
        ),
    ]


def test_another_users_session_is_indistinguishable_from_a_missing_one(
    alice: Owner, bob: Owner
) -> None:
    before = snapshot(alice)
    ghost = "ses_" + secrets.token_hex(12)
    for (method, path, kw), (_, ghost_path, ghost_kw) in zip(
        probes(alice.session, alice.reply_id), probes(ghost, alice.reply_id), strict=True
    ):
        theirs = bob.client.request(method, path, **kw)
        missing = bob.client.request(method, ghost_path, **ghost_kw)
        err = error_of(theirs, 404)
        ghost_err = error_of(missing, 404)
        assert err["code"] == ghost_err["code"] == "not_found", (method, path, err)
        assert err["field"] == ghost_err["field"], (method, path)
        assert err["message"].replace(alice.session, ghost) == ghost_err["message"], (method, path)
        assert alice.session in err["message"] or "session" in err["message"]
    assert snapshot(alice) == before, "bob's requests changed alice's session"


def test_listing_shows_only_your_own_sessions(alice: Owner, bob: Owner) -> None:
    mine = [
        s["id"] for s in bob.client.get("/v1/sessions", params={"limit": 500}).json()["sessions"]
    ]
    assert bob.session in mine and alice.session not in mine


def test_your_session_with_someone_elses_message_ids_finds_nothing(
    alice: Owner, bob: Owner
) -> None:
    # ids are global integers: aiming bob's own session at alice's message ids must not work
    base = f"/v1/sessions/{bob.session}"
    error_of(bob.client.get(f"{base}/context/{alice.reply_id}"), 404)
    error_of(bob.client.delete(f"{base}/memory/items/{alice.message_ids[0]}"), 404)
    page = bob.client.get(
        f"{base}/messages", params={"before": max(alice.message_ids) + 1, "limit": 500}
    ).json()["messages"]
    assert {m["id"] for m in page} <= set(bob.message_ids)
    assert alice.message_ids[0] in {
        i["id"] for i in alice.client.get(f"/v1/sessions/{alice.session}/memory").json()["items"]
    }


def test_memory_and_export_hold_only_your_own_things(alice: Owner, bob: Owner) -> None:
    memory = bob.client.get(f"/v1/sessions/{bob.session}/memory").json()
    assert {i["id"] for i in memory["items"]} <= set(bob.message_ids)
    assert all("alice" not in p["text"] for p in memory["pinned"])
    assert "alice" not in memory["summary"]
    export = bob.client.get(f"/v1/sessions/{bob.session}/export").json()
    assert "alice" not in str(export)
    assert len(export["messages"]) == len(bob.message_ids)


def test_recall_never_returns_another_users_turns_even_with_identical_text(
    server: LiveServer, alice: Owner, bob: Owner
) -> None:
    # both sessions hold the very same words: only the ids tell them apart
    ctx = bob.client.post(f"/v1/sessions/{bob.session}/context", json={"content": QUERY})
    assert ctx.status_code == 200, ctx.text
    # recalled this turn or kept from an earlier one (issue 13): both are recall's
    parts = ctx.json()["parts"]
    recalled = [m for p in parts if p["kind"] in RECALLED_KINDS for m in p["messages"]]
    assert recalled, ctx.json()  # the query does recall something: the check below is real
    assert all(m.get("id") in bob.message_ids for m in recalled), recalled
    assert any("4711" in m["content"] for m in recalled)

    # and the index itself, asked directly, filters by user and session
    index = server.services.index
    [emb] = index.embedder.encode_sync([QUERY])
    persona = "assistant"

    def query(session_id: str, user_id: str) -> list[int]:
        info = SessionInfo(id=session_id, user_id=user_id, persona_id=persona)
        return [i for i, _ in asyncio.run(index.query(info, k=50, embedding=emb))]

    assert set(query(bob.session, bob.user_id)) <= set(bob.message_ids)
    assert set(query(alice.session, alice.user_id)) <= set(alice.message_ids)
    assert query(alice.session, bob.user_id) == []  # a forged (session, user) pair
    assert query(bob.session, alice.user_id) == []


def test_stateless_prompt_cache_is_per_user(server: LiveServer, alice: Owner, bob: Owner) -> None:
    # cached_tokens would tell bob that someone sent this exact prompt before
    body = {
        "messages": [
            {"role": "system", "content": f"Private note {secrets.token_hex(8)}"},
            {"role": "user", "content": "Say ok."},
        ],
        "max_tokens": 2,
    }

    def cached(o: Owner) -> int:
        r = o.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]

    cached(alice)
    assert cached(alice) > 0  # the cache works for its owner...
    assert cached(bob) == 0  # ...and only for its owner


def test_streamed_turn_on_another_users_session_starts_no_stream(alice: Owner, bob: Owner) -> None:
    url = f"/v1/sessions/{alice.session}/messages"
    with bob.client.stream("POST", url, json={"content": "hi", "stream": True}) as r:
        assert r.headers["content-type"].startswith("application/json"), r.headers
        r.read()
    assert error_of(r, 404)["code"] == "not_found"


# -- uploaded personas ------------------------------------------------------------------------
def upload(c: httpx.Client, pid: str, secret: str) -> httpx.Response:
    return c.post(
        "/v1/personas",
        json={
            "id": pid,
            "name": pid,
            "system_prompt": f"You are {pid}. {secret}",
            "pinned_facts": [secret],
            "memory": {"strategy": "buffer"},
        },
    )


def persona_probes(pid: str, export: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that resolves a persona id given by the caller."""
    return [
        ("GET", f"/v1/personas/{pid}", {}),
        ("POST", "/v1/sessions", {"json": {"persona": pid}}),
        ("POST", "/v1/sessions", {"json": {"persona": pid, "memory": {"strategy": "vector"}}}),
        (
            "POST",
            "/v1/sessions/import",
            {"json": {**export, "session": {**export["session"], "persona": pid}}},
        ),
    ]


def test_another_users_persona_is_indistinguishable_from_a_missing_one(
    server: LiveServer,
) -> None:
    _, akey = server.new_key()
    _, bkey = server.new_key()
    with server.client(akey) as a, server.client(bkey) as b:
        pid, ghost = f"private-{secrets.token_hex(4)}", f"private-{secrets.token_hex(4)}"
        r = upload(a, pid, "Alice's diary key is 4711")
        assert r.status_code == 201, r.text
        assert r.json()["source"] == "uploaded"
        sid = a.post("/v1/sessions", json={"persona": pid}).json()["id"]
        export = a.get(f"/v1/sessions/{sid}/export").json()
        assert a.get(f"/v1/personas/{pid}").json()["pinned_facts"] == ["Alice's diary key is 4711"]
        assert pid in [p["id"] for p in a.get("/v1/personas").json()["personas"]]

        listed = b.get("/v1/personas").json()["personas"]
        assert pid not in [p["id"] for p in listed] and "4711" not in str(listed)
        assert {p["source"] for p in listed} == {"file"}  # bob uploaded nothing: files only
        sessions_before = b.get("/v1/sessions").json()
        for (method, path, kw), (_, ghost_path, ghost_kw) in zip(
            persona_probes(pid, export), persona_probes(ghost, export), strict=True
        ):
            theirs = b.request(method, path, **kw)
            missing = b.request(method, ghost_path, **ghost_kw)
            # import names the unknown persona with a 422 (a body field); the rest answer 404
            expected = 422 if path.endswith("/import") else 404
            assert theirs.status_code == missing.status_code == expected, (path, theirs.text)
            err, ghost_err = error_of(theirs, expected), error_of(missing, expected)
            assert (err["code"], err["field"]) == (ghost_err["code"], ghost_err["field"]), path
            assert err["message"].replace(pid, ghost) == ghost_err["message"], path
            assert "4711" not in theirs.text
        assert b.get("/v1/sessions").json() == sessions_before  # nothing was created
        # alice still has it, unchanged
        assert a.post("/v1/sessions", json={"persona": pid}).status_code == 201


def test_two_users_may_upload_the_same_persona_id(server: LiveServer) -> None:
    _, akey = server.new_key()
    _, bkey = server.new_key()
    with server.client(akey) as a, server.client(bkey) as b:
        pid = f"twin-{secrets.token_hex(4)}"
        assert upload(a, pid, "secret of A").status_code == 201
        r = upload(b, pid, "secret of B")
        assert r.status_code == 201, r.text
        for c, mine, theirs in (
            (a, "secret of A", "secret of B"),
            (b, "secret of B", "secret of A"),
        ):
            assert c.get(f"/v1/personas/{pid}").json()["pinned_facts"] == [mine]
            sid = c.post("/v1/sessions", json={"persona": pid}).json()["id"]
            ctx = c.post(f"/v1/sessions/{sid}/context", json={"content": "hello"})
            assert ctx.status_code == 200, ctx.text
            assert mine in ctx.text and theirs not in ctx.text  # the session uses its owner's
            err = error_of(upload(c, pid, "again"), 409, "id")
            assert pid in err["message"]


def test_builtin_persona_ids_cannot_be_uploaded(server: LiveServer) -> None:
    _, key = server.new_key()
    with server.client(key) as c:
        builtins = [p for p in c.get("/v1/personas").json()["personas"] if p["source"] == "file"]
        assert {"assistant", "pippa", "cody"} <= {p["id"] for p in builtins}
        for p in builtins:
            err = error_of(upload(c, p["id"], "shadow"), 409, "id")
            assert repr(p["id"]) in err["message"] and "built-in" in err["message"]
            got = c.get(f"/v1/personas/{p['id']}").json()
            assert got["source"] == "file" and "shadow" not in str(got)


def test_uploads_and_their_sessions_survive_a_restart_still_private(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = make_settings(
        tmp_path_factory.mktemp("persona-restart"),
        auth="required",
        max_tokens_limit=16,
        default_max_tokens=4,
    )
    pid = "alice-bot"
    with LiveServer(settings, graceful_timeout=5) as live:
        _, akey = live.new_key("alice")
        _, bkey = live.new_key("bob")
        with live.client(akey) as a:
            assert upload(a, pid, "Alice's diary key is 4711").status_code == 201
            sid = a.post("/v1/sessions", json={"persona": pid}).json()["id"]
            r = a.post(f"/v1/sessions/{sid}/messages", json={"content": "hi", "max_tokens": 2})
            assert r.status_code == 200, r.text
    with (
        LiveServer(settings, graceful_timeout=5) as live,
        live.client(akey) as a,
        live.client(bkey) as b,
    ):
        assert a.get(f"/v1/personas/{pid}").json()["source"] == "uploaded"
        assert pid in [p["id"] for p in a.get("/v1/personas").json()["personas"]]
        r = a.post(f"/v1/sessions/{sid}/messages", json={"content": "hi", "max_tokens": 2})
        assert r.status_code == 200, r.text
        memory = a.get(f"/v1/sessions/{sid}/memory")
        assert "4711" in memory.text  # the persona's pinned fact, resolved after restart
        error_of(b.get(f"/v1/personas/{pid}"), 404, "persona")
        error_of(b.post("/v1/sessions", json={"persona": pid}), 404, "persona")
        assert pid not in [p["id"] for p in b.get("/v1/personas").json()["personas"]]
        # bob's own "alice-bot" is his, and does not disturb alice's
        assert upload(b, pid, "Bob's").status_code == 201
        assert "4711" in a.get(f"/v1/personas/{pid}").text
