"""Relationships and memory scopes in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from app.store.errors import NotFound
from app.store.records import NewMessage
from app.store.repo import Store
from memory.relationship import RelationshipFact, RelationshipState
from memory.types import MemoryState

FACT = RelationshipFact(id="f1", text="allergic to peanuts", created_at=datetime.now(UTC))


def chat(store: Store, user: str, persona: str, *texts: str) -> tuple[str, list[int]]:
    s = store.create_session(user, persona, "hybrid")
    msgs = store.add_messages(user, s.id, [NewMessage(role="user", content=t) for t in texts])
    return s.id, [m.id for m in msgs]


def test_relationship_survives_a_restart_and_is_per_user_and_persona(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    dad, other = store.get_or_create_user("dad").id, store.get_or_create_user("other").id
    assert store.get_relationship(dad, "pippa") == RelationshipState()
    store.update_relationship(dad, "pippa", lambda r: r.model_copy(update={"facts": [FACT]}))
    assert store.update_relationship(dad, "pippa", lambda r: None).facts == [FACT]  # no change
    store.close()
    again = make_store()  # a new process on the same database
    assert again.get_relationship(dad, "pippa").facts == [FACT]
    assert again.get_relationship(dad, "cody").facts == []
    assert again.get_relationship(other, "pippa").facts == []
    chat(again, dad, "cody", "hello")
    listed = {r.persona_id: r.state for r in again.list_relationships(dad)}
    assert listed.keys() == {"pippa", "cody"} and listed["pippa"].facts == [FACT]
    assert again.list_relationships(other) == []
    again.delete_relationship(dad, "pippa")
    assert again.get_relationship(dad, "pippa") == RelationshipState()


def test_scopes_list_only_the_users_own_sessions(store: Store) -> None:
    dad, other = store.get_or_create_user("dad").id, store.get_or_create_user("other").id
    s1, ids1 = chat(store, dad, "pippa", "my cat is Jimmi", "I live in Busan")
    s2, _ = chat(store, dad, "cody", "dark lord stuff")
    s3, _ = chat(store, dad, "pippa")
    chat(store, other, "pippa", "their secret")
    store.save_memory(dad, s1, MemoryState(forgotten=[ids1[1]]))

    def seen(scope: str, after: int = 0) -> dict[str, list[str]]:
        out = store.scope_histories(dad, "pippa", scope, exclude=s3, after_id=after)  # type: ignore[arg-type]
        return {h.session.id: [m.content for m in h.history] for h in out}

    assert seen("session") == {}
    assert seen("persona") == {s1: ["my cat is Jimmi"]}  # the forgotten turn is not there
    assert seen("user") == {s1: ["my cat is Jimmi"], s2: ["dark lord stuff"]}
    assert seen("persona", after=ids1[0]) == {s1: []}  # a wipe's mark
    assert store.message_session(dad, ids1[0]).id == s1
    with pytest.raises(NotFound):
        store.message_session(other, ids1[0])  # never another user's


def test_deleting_a_session_drops_its_gist_but_keeps_the_facts(store: Store) -> None:
    from memory.relationship import refresh_gist

    dad = store.get_or_create_user("dad").id
    s1, _ = chat(store, dad, "pippa", "My cat is called Jimmi and she is 3.")
    history = store.history(dad, s1)
    store.update_relationship(
        dad,
        "pippa",
        lambda r: refresh_gist(r.model_copy(update={"facts": [FACT]}), s1, None, history),
    )
    assert store.get_relationship(dad, "pippa").gist(s1) is not None
    assert store.max_message_id() == history[-1].id
    store.delete_session(dad, s1)
    rel = store.get_relationship(dad, "pippa")
    assert rel.gist(s1) is None and rel.facts == [FACT]
