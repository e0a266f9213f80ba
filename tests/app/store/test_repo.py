"""Store behaviour on SQLite and PostgreSQL (see conftest: every test runs on both)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.store.errors import Conflict, LimitExceeded, NotFound
from app.store.models import ContextRecord, Message
from app.store.records import NewMessage
from app.store.repo import Store
from memory.types import Context, ContextMessage, ContextPart, MemoryState, PinnedFact


def _session(store: Store, user: str = "alice", persona: str = "pippa") -> tuple[str, str]:
    uid = store.get_or_create_user(user).id
    return uid, store.create_session(uid, persona, "hybrid", {"k": 4}, title="t").id


def _lease_over(store: Store) -> datetime:
    """A moment after every lease `store` gave out so far has run out (its server died)."""
    return datetime.now(UTC) + timedelta(seconds=store.lease_seconds + 1)


def _context(text: str) -> Context:
    return Context(
        budget=100,
        total_tokens=12,
        parts=[
            ContextPart(
                kind="persona",
                tokens=5,
                messages=[ContextMessage(role="system", content="You are Pippa.")],
            ),
            ContextPart(kind="new", tokens=7, messages=[ContextMessage(role="user", content=text)]),
        ],
    )


def test_users_get_or_create_is_idempotent(store: Store) -> None:
    a = store.get_or_create_user("alice")
    assert store.get_or_create_user("alice") == a
    assert store.get_or_create_user().name == "local"
    assert store.get_user(a.id) == a == store.get_user_by_name("alice")
    with pytest.raises(NotFound):
        store.get_user("usr_nope")
    with pytest.raises(ValueError, match="empty"):
        store.get_or_create_user("  ")


def test_session_crud(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    s = store.create_session(uid, "pippa", "hybrid", {"k": 4}, title="first")
    assert s.id.startswith("ses_") and s.params == {"k": 4} and s.title == "first"
    assert store.get_session(uid, s.id) == s
    changed = store.update_session(uid, s.id, title="renamed", strategy="window", params={"k": 2})
    assert (changed.title, changed.strategy, changed.params) == ("renamed", "window", {"k": 2})
    assert changed.persona_id == "pippa" and changed.updated_at >= s.updated_at
    assert store.update_session(uid, s.id, clear_title=True).title is None
    assert store.count_sessions(uid) == 1
    store.delete_session(uid, s.id)
    with pytest.raises(NotFound):
        store.get_session(uid, s.id)
    assert store.count_sessions(uid) == 0


def test_budget_tokens_is_a_column_set_with_the_params(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    s = store.create_session(uid, "pippa", "window", {"k": 4}, budget_tokens=900)
    assert (s.params, s.budget_tokens) == ({"k": 4}, 900)
    assert s.memory_params() == {"k": 4, "budget_tokens": 900}  # as clients see it
    assert store.get_session(uid, s.id) == s
    assert store.update_session(uid, s.id, title="renamed").budget_tokens == 900
    # the memory's settings are replaced together: new params without a budget drop the cap
    changed = store.update_session(uid, s.id, params={"k": 2}, budget_tokens=1200)
    assert (changed.params, changed.budget_tokens) == ({"k": 2}, 1200)
    assert store.update_session(uid, s.id, params={"k": 2}).budget_tokens is None
    with pytest.raises(ValueError, match="budget_tokens"):
        store.create_session(uid, "pippa", "window", {"budget_tokens": 900})
    with pytest.raises(ValueError, match="budget_tokens"):
        store.update_session(uid, s.id, params={"k": 2, "budget_tokens": 900})
    with pytest.raises(ValueError, match="budget_tokens"):
        store.update_session(uid, s.id, budget_tokens=900)


def test_another_users_session_is_not_found_everywhere(store: Store) -> None:
    alice, sid = _session(store, "alice")
    msg = store.add_message(alice, sid, "user", "my secret", 3)
    store.save_context(alice, sid, _context("my secret"), message_id=msg.id)
    bob = store.get_or_create_user("bob").id
    calls: list[Callable[[], object]] = [
        lambda: store.get_session(bob, sid),
        lambda: store.update_session(bob, sid, title="mine"),
        lambda: store.delete_session(bob, sid),
        lambda: store.add_message(bob, sid, "user", "hi"),
        lambda: store.list_messages(bob, sid),
        lambda: store.history(bob, sid),
        lambda: store.get_message(bob, sid, msg.id),
        lambda: store.update_message(bob, sid, msg.id, content="x"),
        lambda: store.save_partial_reply(bob, sid, msg.id, "x", 1),
        lambda: store.delete_message(bob, sid, msg.id),
        lambda: store.get_memory(bob, sid),
        lambda: store.save_memory(bob, sid, MemoryState(summary="x")),
        lambda: store.get_context(bob, sid, msg.id),
        lambda: store.export_session(bob, sid),
        lambda: store.count_messages(bob, sid),
    ]
    for call in calls:
        with pytest.raises(NotFound) as e:
            call()
        # the same answer as for a session that does not exist: nothing reveals it
        assert str(e.value) == f"session {sid!r} not found"
    assert store.list_sessions(bob) == []
    assert store.get_message(alice, sid, msg.id).content == "my secret"
    # a message id from alice's session is not reachable through bob's own session either
    _, bob_sid = _session(store, "bob")
    with pytest.raises(NotFound, match="message"):
        store.get_message(bob, bob_sid, msg.id)
    with pytest.raises(NotFound):
        store.get_context(bob, bob_sid, msg.id)


def test_delete_session_cascades_to_messages_and_contexts(store: Store) -> None:
    uid, sid = _session(store)
    keep_uid, keep_sid = _session(store, "bob")
    for i in range(3):
        m = store.add_message(uid, sid, "assistant", f"m{i}")
        store.save_context(uid, sid, _context(f"m{i}"), message_id=m.id)
    store.add_message(keep_uid, keep_sid, "user", "stays")
    store.delete_session(uid, sid)
    with store._read() as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 1
        assert db.scalar(select(func.count()).select_from(ContextRecord)) == 0


def test_messages_order_and_paging(store: Store) -> None:
    uid, sid = _session(store)
    ids = [
        store.add_message(uid, sid, "user" if i % 2 == 0 else "assistant", f"m{i}", i).id
        for i in range(7)
    ]
    assert ids == sorted(ids)
    assert [m.content for m in store.list_messages(uid, sid)] == [f"m{i}" for i in range(7)]
    newest = store.list_messages(uid, sid, limit=3)
    assert [m.id for m in newest] == ids[4:]
    older = store.list_messages(uid, sid, limit=3, before=newest[0].id)
    assert [m.id for m in older] == ids[1:4]
    assert [m.id for m in store.list_messages(uid, sid, limit=3, before=older[0].id)] == ids[:1]
    assert store.count_messages(uid, sid) == 7


def test_list_sessions_most_recent_first_with_paging(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    sids = [store.create_session(uid, "assistant", "buffer").id for _ in range(4)]
    store.add_message(uid, sids[0], "user", "bump")  # activity moves a session to the front
    listed = [s.id for s in store.list_sessions(uid)]
    assert listed[0] == sids[0] and set(listed) == set(sids)
    assert [s.id for s in store.list_sessions(uid, limit=2, offset=1)] == listed[1:3]


def test_session_limit(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    store.create_session(uid, "p", "buffer", max_sessions=2)
    store.create_session(uid, "p", "buffer", max_sessions=2)
    with pytest.raises(LimitExceeded) as e:
        store.create_session(uid, "p", "buffer", max_sessions=2)
    assert e.value.maximum == 2 and "sessions per user" in str(e.value)


def test_reply_lifecycle_pending_complete_and_interrupted(make_store: Callable[[], Store]) -> None:
    store = make_store()
    uid, sid = _session(store)
    # the user's message is committed before generation; the reply row is pending meanwhile
    user_msg = store.add_message(uid, sid, "user", "hello", 2)
    reply = store.add_message(uid, sid, "assistant", "", status="pending")
    ctx = store.save_context(uid, sid, _context("hello"))
    done = store.update_message(
        uid, sid, reply.id, content="Hi dad!", tokens=4, status="complete", context_id=ctx.id
    )
    assert (done.content, done.status, done.context_id) == ("Hi dad!", "complete", ctx.id)
    assert store.get_context(uid, sid, reply.id) == ctx
    # a second reply dies with the server: what was produced stays, marked interrupted
    store.add_message(uid, sid, "user", "tell me a story", 4)
    cut = store.add_message(uid, sid, "assistant", "Once upon", 2, status="pending")
    restarted = make_store()
    assert restarted.recover_pending() == 0  # the dead server's lease has not run out yet
    assert restarted.recover_pending(now=_lease_over(store)) == 1
    got = restarted.get_message(uid, sid, cut.id)
    assert (got.status, got.content) == ("interrupted", "Once upon")
    # history (what memory sees) holds complete messages only, oldest first
    history = restarted.history(uid, sid)
    assert [m.content for m in history] == ["hello", "Hi dad!", "tell me a story"]
    assert history[0].id == user_msg.id and history[0].tokens == 2
    assert history[0].created_at.tzinfo is not None


def test_partial_reply_checkpoints_survive_a_crash_and_never_outlive_the_final_text(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    uid, sid = _session(store)
    store.add_message(uid, sid, "user", "tell me a story", 4)
    reply = store.add_message(uid, sid, "assistant", "", status="pending")
    assert store.save_partial_reply(uid, sid, reply.id, "Once", 1)
    assert store.save_partial_reply(uid, sid, reply.id, "Once upon a", 3)
    got = store.get_message(uid, sid, reply.id)
    assert (got.content, got.tokens, got.status) == ("Once upon a", 3, "pending")
    # another user, or the right user naming another session, writes nothing
    bob = store.get_or_create_user("bob").id
    with pytest.raises(NotFound, match="session"):
        store.save_partial_reply(bob, sid, reply.id, "stolen", 1)
    _, other = _session(store, "alice")
    with pytest.raises(NotFound, match="message"):
        store.save_partial_reply(uid, other, reply.id, "stolen", 1)
    assert store.get_message(uid, sid, reply.id).content == "Once upon a"
    # the server dies: the next start keeps the last checkpoint, marked interrupted
    restarted = make_store()
    assert restarted.recover_pending(now=_lease_over(store)) == 1
    got = restarted.get_message(uid, sid, reply.id)
    assert (got.content, got.tokens, got.status) == ("Once upon a", 3, "interrupted")
    # a checkpoint landing after the reply was finalized is a no-op
    assert not restarted.save_partial_reply(uid, sid, reply.id, "Once", 1)
    store.add_message(uid, sid, "user", "again", 1)
    done = store.add_message(uid, sid, "assistant", "", status="pending")
    store.update_message(uid, sid, done.id, content="The end.", tokens=3, status="complete")
    assert not store.save_partial_reply(uid, sid, done.id, "The", 1)
    got = store.get_message(uid, sid, done.id)
    assert (got.content, got.tokens, got.status) == ("The end.", 3, "complete")
    assert restarted.get_message(uid, sid, reply.id).content == "Once upon a"


def test_edit_and_delete_message(store: Store) -> None:
    uid, sid = _session(store)
    m = store.add_message(uid, sid, "user", "helo", 1)
    assert store.update_message(uid, sid, m.id, content="hello", tokens=2).content == "hello"
    store.delete_message(uid, sid, m.id)
    with pytest.raises(NotFound, match="message"):
        store.get_message(uid, sid, m.id)
    with pytest.raises(ValueError, match="role"):
        store.add_message(uid, sid, "robot", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status must be one of"):
        other = store.add_message(uid, sid, "user", "x")
        store.update_message(uid, sid, other.id, status="done")  # type: ignore[arg-type]


def test_add_messages_keeps_order_and_timestamps(store: Store) -> None:
    uid, sid = _session(store)
    t0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = store.add_messages(
        uid,
        sid,
        [
            NewMessage(role="user", content=f"old {i}", created_at=t0 + timedelta(minutes=i))
            for i in range(5)
        ],
    )
    assert [r.content for r in rows] == [f"old {i}" for i in range(5)]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert store.get_message(uid, sid, rows[2].id).created_at == t0 + timedelta(minutes=2)


def test_memory_state_versioned_save(store: Store) -> None:
    uid, sid = _session(store)
    state, version = store.get_memory(uid, sid)
    assert state == MemoryState() and version == 0
    state.summary = "Dad likes tea."
    state.pinned.append(PinnedFact(id="u1", text="Dad's birthday is May 3"))
    v1 = store.save_memory(uid, sid, state, expected_version=version)
    assert v1 == 1
    with pytest.raises(Conflict):
        store.save_memory(uid, sid, MemoryState(summary="stale"), expected_version=version)
    got, v = store.get_memory(uid, sid)
    assert got == state and v == 1


def test_concurrent_memory_updates_lose_nothing(make_store: Callable[[], Store]) -> None:
    # two Store objects = two processes' worth of connections on one database
    stores = [make_store(), make_store()]
    uid, sid = _session(stores[0])
    per_thread, threads = 10, 4
    errors: list[BaseException] = []

    def add_facts(n: int) -> None:
        try:
            for i in range(per_thread):
                fact = PinnedFact(id=f"t{n}-{i}", text=f"fact {n}-{i}")
                stores[n % 2].update_memory(uid, sid, lambda s, f=fact: s.pinned.append(f))
        except BaseException as e:  # surfaced below
            errors.append(e)

    workers = [threading.Thread(target=add_facts, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    state, version = stores[0].get_memory(uid, sid)
    assert len({f.id for f in state.pinned}) == per_thread * threads
    assert version == per_thread * threads


def test_contexts_by_message_and_id(store: Store) -> None:
    uid, sid = _session(store)
    reply = store.add_message(uid, sid, "assistant", "hi")
    saved = store.save_context(uid, sid, _context("hi there"), message_id=reply.id)
    assert saved.id is not None and saved.id.startswith("ctx_")
    assert store.get_message(uid, sid, reply.id).context_id == saved.id
    assert store.get_context(uid, sid, reply.id) == saved
    assert store.get_context_by_id(uid, sid, saved.id) == saved
    assert store.get_context(uid, sid, reply.id).to_messages()[-1]["content"] == "hi there"
    with pytest.raises(NotFound, match="context"):
        store.get_context(uid, sid, reply.id + 1000)


def test_restart_keeps_everything(make_store: Callable[[], Store]) -> None:
    first = make_store()
    uid, sid = _session(first)
    first.add_message(uid, sid, "user", "remember: my cat is Nabi", 8)
    first.save_memory(uid, sid, MemoryState(summary="Dad has a cat named Nabi."))
    first.close()
    second = make_store()
    assert second.get_session(uid, sid).persona_id == "pippa"
    assert [m.content for m in second.history(uid, sid)] == ["remember: my cat is Nabi"]
    assert second.get_memory(uid, sid)[0].summary == "Dad has a cat named Nabi."
    assert second.integrity_check() == "ok"


def test_turn_lock_serializes_across_stores(make_store: Callable[[], Store]) -> None:
    a, b = make_store(), make_store()
    uid, sid = _session(a)
    held = a.acquire_turn_lock(sid, wait_seconds=0)
    assert held is not None
    if a.backend == "postgresql":
        assert b.acquire_turn_lock(sid, wait_seconds=0.2) is None  # busy: the caller says 409
        other = b.acquire_turn_lock(_session(b, "bob")[1], wait_seconds=0)
        assert other is not None  # other sessions proceed independently
        other.release()
    held.release()
    held.release()  # idempotent
    with b.acquire_turn_lock(sid, wait_seconds=0) as again:
        assert again is not None


def test_concurrent_writers_and_readers_never_fail(make_store: Callable[[], Store]) -> None:
    # SQLite: writers queue on the write lock (BEGIN IMMEDIATE + busy_timeout) instead of
    # failing with "database is locked"; readers run alongside under WAL
    stores = [make_store(), make_store()]
    uid, sid = _session(stores[0])
    errors: list[BaseException] = []
    seen: dict[int, list[int]] = {0: [], 1: []}

    def write(n: int) -> None:
        try:
            for i in range(15):
                stores[n % 2].add_message(uid, sid, "user", f"w{n}-{i}")
        except BaseException as e:  # surfaced below
            errors.append(e)

    def read(r: int) -> None:
        try:
            for _ in range(15):
                seen[r].append(len(stores[1].list_messages(uid, sid, limit=1000)))
        except BaseException as e:  # surfaced below
            errors.append(e)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    workers += [threading.Thread(target=read, args=(r,)) for r in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    messages = stores[0].list_messages(uid, sid, limit=1000)
    assert len(messages) == 60 and len({m.id for m in messages}) == 60
    for n in range(4):  # each writer's messages keep their order
        own = [m.content for m in messages if m.content.startswith(f"w{n}-")]
        assert own == [f"w{n}-{i}" for i in range(15)]
    for counts in seen.values():  # committed messages never disappear from a later read
        assert counts == sorted(counts) and len(counts) == 15
