"""The history cache: every read equals a fresh load from the database, whatever changed.

Each test compares Store.history against a second Store on the same database whose cache is
bypassed, so a stale entry cannot pass for a correct one."""

from __future__ import annotations

import pytest

from app.store.history import HistoryCache
from app.store.records import NewMessage
from app.store.repo import Store


def fresh(store: Store, user_id: str, session_id: str) -> list[tuple[int, str, str]]:
    store.history_cache = HistoryCache()  # nothing cached: a full load
    return [(m.id, m.role, m.content) for m in store.history(user_id, session_id)]


def seen(store: Store, user_id: str, session_id: str) -> list[tuple[int, str, str]]:
    return [(m.id, m.role, m.content) for m in store.history(user_id, session_id)]


def turn(i: int) -> list[NewMessage]:
    return [
        NewMessage(role="user", content=f"question {i}", tokens=5),
        NewMessage(role="assistant", content=f"answer {i}", tokens=5),
    ]


def test_appends_are_fetched_incrementally_and_hits_cost_no_reload(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    user = a.get_or_create_user()
    s = a.create_session(user.id, "assistant", "hybrid")
    assert seen(a, user.id, s.id) == []
    a.add_messages(user.id, s.id, [m for i in range(3) for m in turn(i)])
    assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)
    cache = a.history_cache
    loads, appends, hits = cache.loads, cache.appends, cache.hits
    assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)
    assert cache.hits == hits + 1
    a.add_messages(user.id, s.id, turn(3))
    assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)
    assert (cache.appends, cache.loads) == (appends + 1, loads)


def test_a_reply_completed_after_it_was_read_pending_joins_the_history(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    user = a.get_or_create_user()
    s = a.create_session(user.id, "assistant", "hybrid")
    a.add_messages(user.id, s.id, turn(0))
    q = a.add_message(user.id, s.id, "user", "what next?", tokens=4)
    reply = a.add_message(user.id, s.id, "assistant", "", status="pending")
    assert [m[0] for m in seen(a, user.id, s.id)][-1] == q.id  # pending: not history yet
    a.update_message(user.id, s.id, reply.id, content="this", tokens=2, status="complete")
    assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)
    assert seen(a, user.id, s.id)[-1] == (reply.id, "assistant", "this")


def test_deletes_and_edits_reload(stores: tuple[Store, Store]) -> None:
    a, b = stores
    user = a.get_or_create_user()
    s = a.create_session(user.id, "assistant", "hybrid")
    msgs = a.add_messages(user.id, s.id, [m for i in range(3) for m in turn(i)])
    seen(a, user.id, s.id)
    a.delete_message(user.id, s.id, msgs[2].id)  # through this store
    assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)
    b.delete_message(user.id, s.id, msgs[0].id)  # through the other replica
    assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)
    a.update_message(user.id, s.id, msgs[3].id, content="edited")
    assert (msgs[3].id, "assistant", "edited") in seen(a, user.id, s.id)
    if a.backend == "postgresql":  # ids never repeat; SQLite may reuse a deleted newest id
        b.delete_message(user.id, s.id, msgs[-1].id)
        b.add_message(user.id, s.id, "assistant", "replacement", tokens=3)
        assert seen(a, user.id, s.id) == fresh(b, user.id, s.id)


def test_a_deleted_session_is_gone_and_other_users_get_not_found(
    stores: tuple[Store, Store],
) -> None:
    from app.store.errors import NotFound

    a, _ = stores
    user = a.get_or_create_user()
    other = a.get_or_create_user("someone-else")
    s = a.create_session(user.id, "assistant", "hybrid")
    a.add_messages(user.id, s.id, turn(0))
    seen(a, user.id, s.id)
    with pytest.raises(NotFound):
        a.history(other.id, s.id)  # the cache never bypasses ownership
    a.delete_session(user.id, s.id)
    with pytest.raises(NotFound):
        a.history(user.id, s.id)


def test_the_cache_is_bounded_by_messages() -> None:
    cache = HistoryCache(max_messages=5)
    from datetime import UTC, datetime

    from memory.types import StoredMessage

    def msgs(n: int) -> list[StoredMessage]:
        now = datetime.now(UTC)
        return [
            StoredMessage(id=i + 1, role="user", content="x", tokens=1, created_at=now)
            for i in range(n)
        ]

    cache._publish("s1", 0, msgs(3))
    cache._publish("s2", 0, msgs(3))  # 6 > 5: the least recent session goes
    assert list(cache._entries) == ["s2"]
    cache.invalidate("s2")
    cache._publish("s2", 0, msgs(1))  # read before the invalidation: not published
    assert not cache._entries
