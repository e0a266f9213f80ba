"""The user's words are never destroyed by automation (issue 15), through the HTTP API on the
real model, SQLite and Chroma: forgetting a message the summary covers keeps a summary the
user edited (and says so), rebuilds a summarizer's summary without it while keeping the
previous version, and every replaced summary or removed pinned fact can be restored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.server import assert_error, make_settings, wait_until

from app.main import create_app

MEMORY = {
    "strategy": "summary_buffer",
    "summarizer": "extractive",
    "max_tokens": 64,
    "summary_chunk_tokens": 32,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("user-edits"))
    with TestClient(create_app(settings)) as c:
        yield c


def summarized_session(client: TestClient) -> tuple[str, list[int], dict[str, Any]]:
    """A session whose summarizer's summary covers its first messages."""
    sid = client.post("/v1/sessions", json={"persona": "assistant", "memory": MEMORY}).json()["id"]
    history = [
        {"role": ("user", "assistant")[i % 2], "content": f"Message {i}: day {i}, we fed the cat."}
        for i in range(12)
    ]
    ids = client.post(f"/v1/sessions/{sid}/history", json={"messages": history}).json()["ids"]
    memory = wait_until(
        lambda: (m := client.get(f"/v1/sessions/{sid}/memory").json())["summary_covers"] and m,
        "the summarizer to cover the first messages",
    )
    assert ids[0] in memory["summary_covers"] and memory["summary"]
    assert not memory["summary_edited"]
    return sid, ids, memory


def test_forgetting_a_covered_message_keeps_the_users_edited_summary(client: TestClient) -> None:
    sid, ids, auto = summarized_session(client)
    mine = "The user has a cat called Mochi and feeds her every day."
    edited = client.patch(f"/v1/sessions/{sid}/memory", json={"summary": mine}).json()
    assert edited["summary"] == mine and edited["summary_edited"]
    assert edited["summary_versions"][0]["text"] == auto["summary"]  # the edit is undoable
    assert client.delete(f"/v1/sessions/{sid}/memory/items/{ids[0]}").status_code == 204
    after = client.get(f"/v1/sessions/{sid}/memory").json()
    # before issue 15: summary '' here, silently
    assert after["summary"] == mine and after["summary_edited"]
    assert f"#{ids[0]}" in after["notice"] and "kept as you wrote it" in after["notice"]
    # undo the edit: the summarizer's version is back, and the edit is kept in its place
    restored = client.post(f"/v1/sessions/{sid}/memory/summary/restore", json={}).json()
    assert restored["summary"] == auto["summary"]
    assert restored["summary_versions"][0]["text"] == mine
    assert ids[0] not in restored["summary_covers"]  # forgotten stays forgotten
    again = client.post(f"/v1/sessions/{sid}/memory/summary/restore", json={"version": 0})
    assert again.json()["summary"] == mine
    assert client.delete(f"/v1/sessions/{sid}/memory/notice").status_code == 204
    assert client.get(f"/v1/sessions/{sid}/memory").json()["notice"] is None


def test_a_summarizers_summary_is_rebuilt_without_it_and_the_old_one_kept(
    client: TestClient,
) -> None:
    sid, ids, auto = summarized_session(client)
    forgotten = ids[1]
    assert client.delete(f"/v1/sessions/{sid}/memory/items/{forgotten}").status_code == 204
    now = client.get(f"/v1/sessions/{sid}/memory").json()
    assert now["summary_versions"][0]["text"] == auto["summary"]
    assert "rebuilt without it" in now["notice"]
    # rebuilt in the background (no turn needed), without the forgotten message
    rebuilt = wait_until(
        lambda: (m := client.get(f"/v1/sessions/{sid}/memory").json())["summary_covers"] and m,
        "the summary to be rebuilt",
    )
    assert forgotten not in rebuilt["summary_covers"] and ids[0] in rebuilt["summary_covers"]
    assert "Message 1:" not in rebuilt["summary"]


def test_removed_pinned_facts_can_be_pinned_again(client: TestClient) -> None:
    sid = client.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
    pins = [{"text": "The user is a chef."}, {"text": "The user lives in Busan."}]
    mem = client.patch(f"/v1/sessions/{sid}/memory", json={"pinned": pins}).json()
    chef, busan = (p["id"] for p in mem["pinned"] if p["source"] == "user")
    # replacing the list drops one, unpinning drops the other: both kept
    client.patch(f"/v1/sessions/{sid}/memory", json={"pinned": [pins[1]]})
    assert client.delete(f"/v1/sessions/{sid}/memory/pinned/{busan}").status_code == 204
    mem = client.get(f"/v1/sessions/{sid}/memory").json()
    assert [r["fact"]["id"] for r in mem["pinned_removed"]] == [busan, chef]
    mem = client.post(f"/v1/sessions/{sid}/memory/pinned/{chef}/restore").json()
    assert [p["text"] for p in mem["pinned"] if p["source"] == "user"] == ["The user is a chef."]
    assert [r["fact"]["id"] for r in mem["pinned_removed"]] == [busan]
    # nothing to restore: a clear 404 naming the field
    assert_error(client.post(f"/v1/sessions/{sid}/memory/pinned/{chef}/restore"), 404, "fact_id")
    assert_error(
        client.post(f"/v1/sessions/{sid}/memory/summary/restore", json={"version": 3}),
        404,
        "version",
    )
    assert_error(
        client.post(f"/v1/sessions/{sid}/memory/summary/restore", json={"version": -1}),
        422,
        "version",
    )
