"""A scope read (Store.scope_histories) equals a fresh one from the database whatever changed,
on SQLite and PostgreSQL: a warm read reuses cached records and histories, so every change a
recall must see is made after one, through this store or another replica on the database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.store.history import HistoryCache
from app.store.records import NewMessage
from app.store.repo import Store
from app.store.scopes import ScopeReader
from memory.types import MemoryState

Seen = list[tuple[dict[str, Any], list[tuple[int, str, str]]]]


def read(store: Store, user: str, exclude: str, after_id: int = 0) -> Seen:
    out = store.scope_histories(user, "pippa", "user", exclude=exclude, after_id=after_id)
    return [(h.session.model_dump(), [(m.id, m.role, m.content) for m in h.history]) for h in out]


def fresh(store: Store, user: str, exclude: str, after_id: int = 0) -> Seen:
    store.history_cache, store.scope_reader = HistoryCache(), ScopeReader()  # nothing cached
    return read(store, user, exclude, after_id)


def turn(i: int) -> list[NewMessage]:
    return [NewMessage(role="user", content=f"q{i}"), NewMessage(role="assistant", content=f"a{i}")]


Change = Callable[[Store, Store, str, list[str], list[list[int]]], None]


def _pending_completed(a: Store, b: Store, u: str, s: list[str], ids: list[list[int]]) -> None:
    reply = a.add_message(u, s[1], "assistant", "", status="pending")
    assert [m[0] for m in read(a, u, s[0])[0][1]] == ids[1]  # pending: not recalled yet
    b.update_message(u, s[1], reply.id, content="done", status="complete")


CHANGES: dict[str, Change] = {
    "new message, this store": lambda a, b, u, s, ids: a.add_messages(u, s[1], turn(9)) and None,
    "new message, other replica": lambda a, b, u, s, ids: b.add_messages(u, s[2], turn(9)) and None,
    "edit, this store": lambda a, b, u, s, ids: a.update_message(
        u, s[1], ids[1][0], content="edited"
    ),
    "message deleted, other replica": lambda a, b, u, s, ids: b.delete_message(u, s[2], ids[2][0]),
    "forget, other replica": lambda a, b, u, s, ids: b.save_memory(
        u, s[1], MemoryState(forgotten=[ids[1][1]])
    ),
    "session deleted, other replica": lambda a, b, u, s, ids: b.delete_session(u, s[2]),
    "session renamed, other replica": lambda a, b, u, s, ids: (
        b.update_session(u, s[1], title="renamed") and None
    ),
    "params changed, other replica": lambda a, b, u, s, ids: (
        b.update_session(u, s[1], params={"k": 3}) and None
    ),
    "new session, other replica": lambda a, b, u, s, ids: (
        b.add_messages(u, b.create_session(u, "pippa", "hybrid").id, turn(7)) and None
    ),
    "pending reply completed, other replica": _pending_completed,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_warm_scope_read_sees_every_change(stores: tuple[Store, Store], change: str) -> None:
    a, b = stores
    u = a.get_or_create_user().id
    s = [a.create_session(u, "pippa", "hybrid").id for _ in range(3)]  # s[0] asks
    ids = [[m.id for m in a.add_messages(u, sid, turn(i))] for i, sid in enumerate(s)]
    before = read(a, u, s[0])
    assert read(a, u, s[0]) == before  # warm
    CHANGES[change](a, b, u, s, ids)
    after = read(a, u, s[0])
    assert after != before
    assert after == fresh(b, u, s[0])
    assert read(a, u, s[0]) == after  # and warm again


def test_unchanged_sessions_are_not_rebuilt(stores: tuple[Store, Store]) -> None:
    a, b = stores
    u = a.get_or_create_user().id
    s = [a.create_session(u, "pippa", "hybrid").id for _ in range(4)]
    for i, sid in enumerate(s):
        a.add_messages(u, sid, turn(i))
    read(a, u, s[0])
    builds, loads = a.scope_reader.builds, a.history_cache.loads
    b.update_session(u, s[1], title="renamed")
    assert read(a, u, s[0]) == fresh(b, u, s[0])
    assert a.scope_reader.builds == builds + 1  # only the renamed one
    assert a.history_cache.loads == loads  # its history was still valid
    assert read(a, u, s[0], after_id=10**9) == [(r, []) for r, _ in read(a, u, s[0])]


def test_every_query_shape_matches_a_fresh_read(stores: tuple[Store, Store]) -> None:
    a, b = stores
    u = a.get_or_create_user().id
    s = [a.create_session(u, p, "hybrid").id for p in ("pippa", "cody", "pippa")]
    for i, sid in enumerate(s):
        a.add_messages(u, sid, turn(i))
    for scope in ("session", "persona", "user"):
        for exclude in (None, s[2]):
            for store in (a, b, a):  # a twice: cold, then warm
                got = store.scope_histories(u, "pippa", scope, exclude)  # type: ignore[arg-type]
                ids = [h.session.id for h in got]
                want = {"session": [], "persona": [s[0], s[2]], "user": s}[scope]
                assert sorted(ids) == sorted(x for x in want if x != exclude)
