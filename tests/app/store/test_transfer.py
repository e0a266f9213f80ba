"""Export/import of a whole session, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from app.store.errors import InvalidData, LimitExceeded
from app.store.repo import Store
from app.store.transfer import remap_memory
from memory.types import MemoryState, PinnedFact


def _filled_session(store: Store) -> tuple[str, str, list[int]]:
    uid = store.get_or_create_user("alice").id
    sid = store.create_session(uid, "pippa", "hybrid", {"k": 3}, title="chat").id
    ids = []
    for i in range(6):
        role = "user" if i % 2 == 0 else "assistant"
        ids.append(store.add_message(uid, sid, role, f"turn {i} 안녕", tokens=i + 1).id)
    ids.append(store.add_message(uid, sid, "assistant", "cut o", 2, status="pending").id)
    store.save_memory(
        uid,
        sid,
        MemoryState(
            summary="They said hello.",
            summary_covers=ids[:2],
            buffer_start_id=ids[2],
            pinned=[PinnedFact(id="u1", text="Dad likes tea")],
            forgotten=[ids[3]],
        ),
    )
    return uid, sid, ids


def test_round_trip_to_another_user(store: Store) -> None:
    uid, sid, ids = _filled_session(store)
    exported = store.export_session(uid, sid)
    data = json.loads(json.dumps(exported))  # what a client would send back
    bob = store.get_or_create_user("bob").id
    imported = store.import_session(bob, data)
    assert imported.id != sid and imported.user_id == bob
    assert (imported.persona_id, imported.strategy, imported.params, imported.title) == (
        "pippa",
        "hybrid",
        {"k": 3},
        "chat (imported)",  # a copy says so (issue 17)
    )
    old = store.list_messages(uid, sid, limit=100)
    new = store.list_messages(bob, imported.id, limit=100)
    assert [(m.role, m.content, m.tokens, m.created_at) for m in new] == [
        (m.role, m.content, m.tokens, m.created_at) for m in old
    ]
    assert new[-1].status == "interrupted"  # a pending reply never resumes after import
    state, _ = store.get_memory(bob, imported.id)
    new_ids = [m.id for m in new]
    assert state.summary == "They said hello." and state.pinned[0].text == "Dad likes tea"
    assert state.summary_covers == new_ids[:2]
    assert state.buffer_start_id == new_ids[2]
    assert state.forgotten == [new_ids[3]]
    # exporting the import gives the same conversation again
    again = store.export_session(bob, imported.id)
    assert [m["content"] for m in again["messages"]] == [m["content"] for m in data["messages"]]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("session"), "session"),
        (lambda d: d["session"].pop("persona"), "session.persona"),
        (lambda d: d["messages"][1].update(role="wizard"), "messages.1.role"),
        (lambda d: d["messages"][0].update(tokens=-1), "messages.0.tokens"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["memory"].update(summary_covers="all"), "memory.summary_covers"),
        (lambda d: d["messages"][1].update(id=d["messages"][0]["id"]), "messages"),
    ],
)
def test_malformed_export_names_the_field(store: Store, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    uid, sid, _ = _filled_session(store)
    data = json.loads(json.dumps(store.export_session(uid, sid)))
    mutate(data)
    before = store.count_sessions(uid)
    with pytest.raises(InvalidData) as e:
        store.import_session(uid, data)
    assert e.value.field == field
    assert store.count_sessions(uid) == before  # nothing half-imported


def test_import_limits(store: Store) -> None:
    uid, sid, _ = _filled_session(store)
    data = store.export_session(uid, sid)
    with pytest.raises(LimitExceeded, match="history import"):
        store.import_session(uid, data, max_messages=3)
    with pytest.raises(LimitExceeded, match="sessions per user"):
        store.import_session(uid, data, max_sessions=1)
    with pytest.raises(InvalidData, match="JSON object"):
        store.import_session(uid, [1, 2])


def test_remap_drops_unknown_ids_and_moves_buffer_start() -> None:
    state = MemoryState(summary_covers=[1, 2, 99], buffer_start_id=4, forgotten=[7])
    out = remap_memory(state, {1: 11, 2: 12, 5: 15, 6: 16})
    assert out.summary_covers == [11, 12] and out.forgotten == []
    assert out.buffer_start_id == 15  # the first kept message at or after the old start
    assert remap_memory(MemoryState(buffer_start_id=9), {1: 11}).buffer_start_id == 12


def test_remap_keeps_only_the_sessions_own_kept_turns() -> None:
    # ids are global: a kept turn of another session (memory scope) must not come to mean
    # whatever message holds that id in the importing store
    state = MemoryState(kept=[[1, 500], [600], [2]])
    assert remap_memory(state, {1: 11, 2: 12}).kept == [[11], [12]]


def test_titles_from_the_first_user_message_and_of_imported_copies(store: Store) -> None:
    """Issue 17: sessions created without a title were all "Chat with Pippa" on the page, and
    an imported copy had the original's title."""
    uid = store.get_or_create_user("carol").id
    long = "  I adopted a   cat called Miso yesterday and she already rules the whole house  "
    sid = store.create_session(uid, "pippa", "buffer").id
    store.add_message(uid, sid, "user", long, tokens=1)
    title = store.get_session(uid, sid).title
    assert title == "I adopted a cat called Miso yesterday…" and len(title) <= 41
    store.add_message(uid, sid, "user", "a later message does not rename it", tokens=1)
    assert store.get_session(uid, sid).title == title

    short = store.create_session(uid, "pippa", "buffer").id
    store.add_message(uid, short, "user", "안녕 피파!", tokens=1)
    assert store.get_session(uid, short).title == "안녕 피파!"
    # a title given (or a session that already had messages) is never replaced
    named = store.create_session(uid, "pippa", "buffer", title="mine").id
    store.add_message(uid, named, "user", "hello", tokens=1)
    assert store.get_session(uid, named).title == "mine"
    cleared = store.update_session(uid, named, clear_title=True)
    assert cleared.title is None
    store.add_message(uid, named, "user", "hello again", tokens=1)
    assert store.get_session(uid, named).title is None

    # an imported copy is marked as one; a copy of a copy is not marked twice
    copy = store.import_session(uid, json.loads(json.dumps(store.export_session(uid, sid))))
    assert copy.title == f"{title} (imported)"
    again = store.import_session(uid, json.loads(json.dumps(store.export_session(uid, copy.id))))
    assert again.title == f"{title} (imported)"
    untitled = store.create_session(uid, "cody", "buffer").id
    store.add_message(uid, untitled, "assistant", "Kukuku...", tokens=1)
    store.add_message(uid, untitled, "user", "hi lord", tokens=1)
    assert store.get_session(uid, untitled).title is None  # it had a message before
    exported = json.loads(json.dumps(store.export_session(uid, untitled)))
    assert store.import_session(uid, exported).title == "hi lord (imported)"


def test_budget_tokens_travels_among_the_params(store: Store) -> None:
    # the export format is as before the column: budget_tokens is one of the params
    uid = store.get_or_create_user("alice").id
    sid = store.create_session(uid, "pippa", "window", {"k": 3}, budget_tokens=900).id
    exported = store.export_session(uid, sid)
    assert exported["session"]["params"] == {"k": 3, "budget_tokens": 900}
    imported = store.import_session(uid, json.loads(json.dumps(exported)))
    assert (imported.params, imported.budget_tokens) == ({"k": 3}, 900)
    exported["session"]["params"]["budget_tokens"] = "lots"
    with pytest.raises(InvalidData, match="budget_tokens"):
        store.import_session(uid, exported)
