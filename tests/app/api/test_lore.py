"""Lorebooks through the HTTP API on the real model and SQLite: CRUD of books and entries with
clear 404/409/422 errors and limits, attach/detach, the dry run's reasons, the lore part of a
real turn's stored Context, a persona's own book, and isolation between two users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.server import LiveServer, assert_error, make_settings, wait_until

from memory.lore.model import MAX_CONTENT_CHARS, MAX_ENTRIES, MAX_KEY_CHARS

BOOK: dict[str, Any] = {
    "name": "Ashvale",
    "description": "A valley with a dragon",
    "scan_depth": 3,
    "token_budget": 200,
    "recursive_scanning": True,
    "extensions": {"kept": {"as": "is"}},
    "entries": [
        {
            "keys": ["Ember", "용"],
            "content": "Ember is a red dragon who guards the Ashvale mine.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 10,
            "use_regex": False,
            "priority": 10,
        },
        {
            "keys": ["mine"],
            "content": "The Ashvale mine gives silver.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 20,
            "use_regex": False,
            "id": 7,
        },
    ],
}

PERSONA = {
    "id": "ashvale-keeper",
    "name": "Mira",
    "system_prompt": "You are Mira, the innkeeper of Ashvale.",
    "character_book": {
        "name": "Mira's world",
        "entries": [
            {
                "keys": ["inn"],
                "content": "The Copper Kettle inn is Mira's.",
                "extensions": {},
                "enabled": True,
                "insertion_order": 0,
                "use_regex": False,
                "id": "inn",
            }
        ],
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("lore"), auth="required")) as s:
        yield s


@pytest.fixture(scope="module")
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.new_key("alice")[1]) as c:
        yield c


@pytest.fixture(scope="module")
def bob(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.new_key("bob")[1]) as c:
        yield c


def new_book(c: httpx.Client, data: dict[str, Any] | None = None) -> dict[str, Any]:
    r = c.post("/v1/lorebooks", json=data or BOOK)
    assert r.status_code == 201, r.text
    return r.json()


def new_session(c: httpx.Client, persona: str = "assistant") -> str:
    r = c.post("/v1/sessions", json={"persona": persona, "memory": {"strategy": "window"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_book_round_trips_with_ids_given_to_entries(alice: httpx.Client) -> None:
    book = new_book(alice)
    assert book["name"] == "Ashvale" and book["entries"] == 2
    stored = alice.get(f"/v1/lorebooks/{book['id']}").json()["book"]
    assert [e["id"] for e in stored["entries"]] == [8, 7]  # the next free number
    assert {k: v for k, v in stored.items() if k != "entries"} == {
        k: v for k, v in BOOK.items() if k != "entries"
    }
    assert stored["entries"][0] == {**BOOK["entries"][0], "id": 8}
    listed = alice.get("/v1/lorebooks").json()["lorebooks"]
    assert book["id"] in [b["id"] for b in listed]
    r = alice.put(f"/v1/lorebooks/{book['id']}", json={**BOOK, "name": "Ashvale v2"})
    assert r.status_code == 200 and r.json()["name"] == "Ashvale v2"
    assert alice.delete(f"/v1/lorebooks/{book['id']}").status_code == 204
    assert_error(alice.get(f"/v1/lorebooks/{book['id']}"), 404, "lorebook_id")


def test_entries_crud_enable_disable_and_their_errors(alice: httpx.Client) -> None:
    bid = new_book(alice)["id"]
    base = f"/v1/lorebooks/{bid}/entries"
    r = alice.post(base, json={"keys": ["moon"], "content": "The moon is green."})
    assert r.status_code == 201 and r.json()["id"] == 9
    assert_error(alice.post(base, json={"keys": ["x"], "content": "y", "id": 7}), 409, "id")
    r = alice.patch(f"{base}/9", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["keys"] == ["moon"]
    r = alice.put(f"{base}/9", json={"keys": ["sun"], "content": "The sun is blue."})
    assert r.json() == {"keys": ["sun"], "content": "The sun is blue.", "id": 9}
    assert alice.get(f"{base}/9").json()["keys"] == ["sun"]
    assert_error(alice.patch(f"{base}/9", json={"keys": ["/(/"]}), 422, "keys.0")
    assert_error(alice.patch(f"{base}/9", json={"keys": "sun"}), 422, "keys")
    assert_error(alice.get(f"{base}/404"), 404, "entry_id")
    assert alice.delete(f"{base}/9").status_code == 204
    assert_error(alice.delete(f"{base}/9"), 404, "entry_id")
    assert [e["id"] for e in alice.get(base).json()["entries"]] == [8, 7]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"keys": ["k" * (MAX_KEY_CHARS + 1)], "content": "x"}, "entries.0.keys.0"),
        ({"keys": ["k"], "content": "x" * (MAX_CONTENT_CHARS + 1)}, "entries.0.content"),
        ({"keys": ["/dra(gon/i"], "content": "x"}, "entries.0.keys.0"),
    ],
)
def test_limits_and_bad_books_are_422_naming_the_field(
    alice: httpx.Client, entry: dict[str, Any], field: str
) -> None:
    assert_error(alice.post("/v1/lorebooks", json={"entries": [entry]}), 422, field)


def test_too_many_entries_and_duplicate_ids(alice: httpx.Client) -> None:
    many = {"entries": [{"keys": ["k"], "content": "c"}] * (MAX_ENTRIES + 1)}
    assert_error(alice.post("/v1/lorebooks", json=many), 422, "entries")
    dup = {
        "entries": [
            {"keys": ["a"], "content": "a", "id": 1},
            {"keys": ["b"], "content": "b", "id": 1},
        ]
    }
    assert_error(alice.post("/v1/lorebooks", json=dup), 422, "entries.1.id")
    assert_error(alice.post("/v1/lorebooks", json=[1, 2]), 422)


def test_attach_dry_run_and_a_real_turn_show_why_entries_fired(alice: httpx.Client) -> None:
    bid = new_book(alice)["id"]
    sid = new_session(alice)
    r = alice.post(f"/v1/sessions/{sid}/lore", json={"book": bid})
    assert r.status_code == 201 and [b["id"] for b in r.json()["books"]] == [bid]
    assert_error(alice.post(f"/v1/sessions/{sid}/lore", json={"book": bid}), 409)
    run = alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "용한테 가 보자"})
    assert run.status_code == 200, run.text
    fired = run.json()["fired"]
    # 용 fires Ember; Ember's content names the mine: recursion fires it
    assert [(f["entry"], f["reason"]) for f in fired] == [("8", "key"), ("7", "recursion")]
    assert fired[0]["why"] == "key '용' in the new message"
    assert fired[1]["via"] == f"{bid}:8" and run.json()["tokens"] > 0
    assert (
        alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "용기를 내"}).json()[
            "fired"
        ]
        == []
    )
    turn = alice.post(
        f"/v1/sessions/{sid}/messages", json={"content": "Tell me of Ember.", "max_tokens": 2}
    )
    assert turn.status_code == 200, turn.text
    reply = turn.json()["reply"]["id"]
    ctx = alice.get(f"/v1/sessions/{sid}/context/{reply}").json()
    kinds = [p["kind"] for p in ctx["parts"]]
    assert kinds == ["persona", "pinned", "lore", "new"]  # after the head, before the chat
    lore = ctx["parts"][kinds.index("lore")]
    assert lore["fired"][0]["key"] == "Ember" and "red dragon" in lore["messages"][0]["content"]
    assert alice.delete(f"/v1/sessions/{sid}/lore/{bid}").status_code == 204
    assert_error(alice.delete(f"/v1/sessions/{sid}/lore/{bid}"), 404)
    again = alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "Ember?"}).json()
    assert again["fired"] == []


def test_export_carries_attached_books_and_import_attaches_them_again(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    bid = new_book(alice)["id"]
    sid = new_session(alice)
    assert alice.post(f"/v1/sessions/{sid}/lore", json={"book": bid}).status_code == 201
    export = alice.get(f"/v1/sessions/{sid}/export").json()
    assert [b["id"] for b in export["lorebooks"]] == [bid]
    books_before = len(alice.get("/v1/lorebooks").json()["lorebooks"])

    # a restore by the owner: the same book, attached again, no copy
    restored = alice.post("/v1/sessions/import", json=export)
    assert restored.status_code == 201, restored.text
    rid = restored.json()["id"]
    assert [b["id"] for b in alice.get(f"/v1/sessions/{rid}/lore").json()["books"]] == [bid]
    assert len(alice.get("/v1/lorebooks").json()["lorebooks"]) == books_before
    dry = alice.post(f"/v1/sessions/{rid}/lore/dry-run", json={"content": "Ember?"}).json()
    assert [f["entry"] for f in dry["fired"]][:1] == ["8"]

    # another user (or another server): a private copy of the book, attached
    moved = bob.post("/v1/sessions/import", json=export)
    assert moved.status_code == 201, moved.text
    copy = bob.get(f"/v1/sessions/{moved.json()['id']}/lore").json()["books"]
    assert len(copy) == 1 and copy[0]["id"] != bid
    assert (
        bob.get(f"/v1/lorebooks/{copy[0]['id']}").json()["book"] == export["lorebooks"][0]["data"]
    )
    assert_error(bob.get(f"/v1/lorebooks/{bid}"), 404)  # alice's own stays hers

    # a bad book is refused before anything is stored, naming where
    bad = {**export, "lorebooks": [{"id": "x", "data": {"entries": [{"keys": ["/(/"]}]}}]}
    r = bob.post("/v1/sessions/import", json=bad)
    assert "bad regex /(/" in assert_error(r, 422, "lorebooks.0.data.entries.0.keys.0")["message"]
    twice = {**export, "lorebooks": export["lorebooks"] * 2}
    assert_error(bob.post("/v1/sessions/import", json=twice), 422, "lorebooks")


def test_a_personas_own_book_is_in_force(alice: httpx.Client) -> None:
    r = alice.post("/v1/personas", json=PERSONA)
    assert r.status_code == 201, r.text
    sid = new_session(alice, PERSONA["id"])
    books = alice.get(f"/v1/sessions/{sid}/lore").json()["books"]
    assert books == [
        {"id": "persona:ashvale-keeper", "name": "Mira's world", "source": "persona", "entries": 1}
    ]
    run = alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "Is the inn open?"})
    assert [f["entry"] for f in run.json()["fired"]] == ["inn"]


def test_lore_tokens_is_a_validated_session_param(alice: httpx.Client) -> None:
    r = alice.post("/v1/sessions", json={"memory": {"strategy": "window", "lore_tokens": -1}})
    assert_error(r, 422, "memory.lore_tokens")
    bid = new_book(alice)["id"]
    r = alice.post("/v1/sessions", json={"memory": {"strategy": "window", "lore_tokens": 0}})
    sid = r.json()["id"]
    alice.post(f"/v1/sessions/{sid}/lore", json={"book": bid})
    run = alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "Ember"}).json()
    assert run["fired"] == [] and [f["entry"] for f in run["dropped"]] == ["8", "7"]
    assert "did not fit" in run["notes"][0]


def test_user_b_cannot_see_change_or_attach_user_as_book(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    bid = new_book(alice)["id"]
    a_session = new_session(alice)
    b_session = new_session(bob)
    assert bid not in [b["id"] for b in bob.get("/v1/lorebooks").json()["lorebooks"]]
    for r in (
        bob.get(f"/v1/lorebooks/{bid}"),
        bob.put(f"/v1/lorebooks/{bid}", json=BOOK),
        bob.delete(f"/v1/lorebooks/{bid}"),
        bob.get(f"/v1/lorebooks/{bid}/entries"),
        bob.patch(f"/v1/lorebooks/{bid}/entries/8", json={"enabled": False}),
        bob.post(f"/v1/lorebooks/{bid}/entries", json={"keys": ["x"], "content": "y"}),
        bob.post(f"/v1/sessions/{b_session}/lore", json={"book": bid}),
    ):
        assert_error(r, 404)
    assert_error(bob.post(f"/v1/sessions/{a_session}/lore", json={"book": bid}), 404)
    assert_error(bob.get(f"/v1/sessions/{a_session}/lore"), 404)
    assert_error(bob.post(f"/v1/sessions/{a_session}/lore/dry-run", json={"content": "x"}), 404)
    assert alice.get(f"/v1/lorebooks/{bid}").json()["book"]["entries"][0]["enabled"] is True


def test_a_sticky_entry_stays_for_the_next_turn_after_a_real_reply(alice: httpx.Client) -> None:
    sticky = {
        "scan_depth": 1,  # the new message only: the reply may well say "Ember" too
        "entries": [
            {
                "keys": ["Ember"],
                "content": "Ember is asleep.",
                "id": "e",
                "extensions": {"sticky": 2},
            }
        ],
    }
    bid = new_book(alice, sticky)["id"]
    sid = new_session(alice)
    alice.post(f"/v1/sessions/{sid}/lore", json={"book": bid})
    r = alice.post(f"/v1/sessions/{sid}/messages", json={"content": "Ember?", "max_tokens": 2})
    assert r.status_code == 200, r.text

    def fired() -> list[dict[str, Any]]:
        run = alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "and now?"})
        return run.json()["fired"]

    # the reply's observation (in the background) starts the window: then it fires unasked
    got = wait_until(fired, "the sticky window to be saved")
    assert got[0]["reason"] == "sticky" and "through message 3" in got[0]["why"]


def test_constant_entries_already_pinned_by_a_card_import_are_not_shown_twice(
    alice: httpx.Client,
) -> None:
    persona = {
        **PERSONA,
        "id": "kettle-keeper",
        "pinned_facts": ["The Copper Kettle never closes."],
        "character_book": {
            "entries": [
                {
                    "keys": [],
                    "content": "The Copper Kettle never closes.",
                    "constant": True,
                    "id": 1,
                },
                {"keys": [], "content": "Mira hates rain.", "constant": True, "id": 2},
            ]
        },
    }
    assert alice.post("/v1/personas", json=persona).status_code == 201
    sid = new_session(alice, "kettle-keeper")
    run = alice.post(f"/v1/sessions/{sid}/lore/dry-run", json={"content": "hi"}).json()
    assert [f["entry"] for f in run["fired"]] == ["2"]
