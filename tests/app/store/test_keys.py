"""API keys (hashed, verify, revoke) and uploaded personas, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from app.store.errors import Conflict, NotFound
from app.store.keys import hash_key
from app.store.models import ApiKey
from app.store.repo import Store


def test_key_is_stored_only_as_its_sha256(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    record, key = store.create_api_key(uid)
    assert key.startswith("mk_") and len(key) > 40
    assert key.startswith(record.prefix) and len(record.prefix) < len(key) // 2
    with store._read() as db:
        row = db.scalar(select(ApiKey).where(ApiKey.id == record.id))
        assert row is not None
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() == hash_key(key)
        stored = [str(v) for v in (row.id, row.prefix, row.key_hash, row.user_id)]
    assert all(key not in v for v in stored)


def test_verify_returns_the_owner_and_nothing_for_bad_keys(store: Store) -> None:
    alice = store.get_or_create_user("alice")
    bob = store.get_or_create_user("bob")
    _, alice_key = store.create_api_key(alice.id)
    _, bob_key = store.create_api_key(bob.id)
    assert store.verify_api_key(alice_key) == alice
    assert store.verify_api_key(bob_key) == bob
    for bad in ("", "mk_", alice_key + "x", alice_key[:-1], "Bearer " + alice_key, "nope"):
        assert store.verify_api_key(bad) is None
    listed = store.list_api_keys(alice.id)
    assert len(listed) == 1 and listed[0].user_name == "alice"
    assert listed[0].last_used_at is not None  # verify recorded the use
    assert {k.user_name for k in store.list_api_keys()} == {"alice", "bob"}


def test_revoke_by_id_or_prefix(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    first, key1 = store.create_api_key(uid)
    second, key2 = store.create_api_key(uid)
    revoked = store.revoke_api_key(first.id)
    assert revoked.revoked_at is not None
    assert store.verify_api_key(key1) is None and store.verify_api_key(key2) is not None
    assert store.revoke_api_key(first.id).revoked_at == revoked.revoked_at  # idempotent
    store.revoke_api_key(second.prefix)
    assert store.verify_api_key(key2) is None
    with pytest.raises(NotFound, match="api key"):
        store.revoke_api_key("key_unknown")


def test_a_user_cannot_revoke_another_users_key(store: Store) -> None:
    alice = store.get_or_create_user("alice").id
    bob = store.get_or_create_user("bob").id
    record, key = store.create_api_key(alice)
    with pytest.raises(NotFound):
        store.revoke_api_key(record.id, user_id=bob)
    assert store.verify_api_key(key) is not None


def test_create_key_for_unknown_user(store: Store) -> None:
    with pytest.raises(NotFound, match="user"):
        store.create_api_key("usr_missing")


def test_uploaded_personas_persist_and_conflict(store: Store) -> None:
    uid = store.get_or_create_user("alice").id
    saved = store.save_persona(uid, "nabi", "id: nabi\nname: Nabi\n", "yaml")
    assert saved.user_id == uid
    assert store.get_persona(uid, "nabi") == saved
    with pytest.raises(Conflict, match="nabi"):
        store.save_persona(uid, "nabi", "{}", "json")
    replaced = store.save_persona(uid, "nabi", '{"id": "nabi"}', "json", replace=True)
    assert replaced.format == "json" and replaced.created_at == saved.created_at
    assert [p.id for p in store.list_personas(uid)] == ["nabi"]
    store.delete_persona(uid, "nabi")
    with pytest.raises(NotFound):
        store.get_persona(uid, "nabi")


def test_uploaded_persona_ids_are_per_user(store: Store) -> None:
    alice = store.get_or_create_user("alice").id
    bob = store.get_or_create_user("bob").id
    store.save_persona(alice, "alice-bot", "id: alice-bot\nsystem_prompt: secret A", "yaml")
    # bob can neither read nor delete alice's, and is told only "not found"
    with pytest.raises(NotFound, match="persona 'alice-bot' not found"):
        store.get_persona(bob, "alice-bot")
    with pytest.raises(NotFound):
        store.delete_persona(bob, "alice-bot")
    assert store.list_personas(bob) == []
    # the same id in bob's own space is a different persona
    theirs = store.save_persona(bob, "alice-bot", "id: alice-bot\nsystem_prompt: B", "yaml")
    assert store.get_persona(alice, "alice-bot").source.endswith("secret A")
    assert store.get_persona(bob, "alice-bot") == theirs
    assert sorted(p.user_id for p in store.list_personas()) == sorted([alice, bob])
    with pytest.raises(NotFound, match="user"):
        store.save_persona("usr_missing", "ghost", "id: ghost", "yaml")


def test_deleting_a_user_deletes_their_uploads(store: Store) -> None:
    from app.store.models import User

    alice = store.get_or_create_user("alice").id
    bob = store.get_or_create_user("bob").id
    store.save_persona(alice, "p", "id: p", "yaml")
    store.save_persona(bob, "p", "id: p", "yaml")
    with store._tx() as db:
        db.delete(db.get(User, alice))
    assert [(p.user_id, p.id) for p in store.list_personas()] == [(bob, "p")]
