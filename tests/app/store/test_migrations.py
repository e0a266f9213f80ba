"""Schema versions: fresh databases, upgrades that keep data, refusal of unknown versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from app.store import migrations
from app.store.db import create_db_engine
from app.store.errors import Conflict, NotFound
from app.store.keys import hash_key
from app.store.migration_steps import v1_metadata
from app.store.migrations import CURRENT_VERSION, Step, create_schema_at, migrate, schema_version
from app.store.repo import LOCAL_USER, Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
V1_KEY = "mk_v1-era-key-0123456789abcdefghijklmnopqrstuv"


def _version(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return schema_version(conn)


def _fill_v1(engine: Engine) -> None:
    """Data written by a version-1 server, through the frozen v1 tables."""
    t = v1_metadata().tables
    with engine.begin() as conn:
        conn.execute(t["users"].insert(), [{"id": "usr_1", "name": "dad", "created_at": T0}])
        conn.execute(
            t["api_keys"].insert(),
            [
                {
                    "id": "key_1",
                    "user_id": "usr_1",
                    "prefix": V1_KEY[:11],
                    "key_hash": hash_key(V1_KEY),
                    "created_at": T0,
                    "revoked_at": None,
                }
            ],
        )
        conn.execute(
            t["sessions"].insert(),
            [
                {
                    "id": "ses_1",
                    "user_id": "usr_1",
                    "persona_id": "pippa",
                    "title": "old chat",
                    "strategy": "hybrid",
                    "params": {"k": 2},
                    "memory": {"summary": "Dad has a cat named Nabi.", "summary_covers": [1]},
                    "memory_version": 3,
                    "created_at": T0,
                    "updated_at": T0,
                }
            ],
        )
        conn.execute(
            t["messages"].insert(),
            [
                {
                    "session_id": "ses_1",
                    "role": "user",
                    "content": "내 고양이 이름은 나비야",
                    "tokens": 9,
                    "status": "complete",
                    "created_at": T0,
                    "context_id": None,
                },
                {
                    "session_id": "ses_1",
                    "role": "assistant",
                    "content": "나비! 귀엽다",
                    "tokens": 6,
                    "status": "complete",
                    "created_at": T0,
                    "context_id": "ctx_1",
                },
            ],
        )
        conn.execute(
            t["contexts"].insert(),
            [
                {
                    "id": "ctx_1",
                    "session_id": "ses_1",
                    "message_id": 2,
                    "created_at": T0,
                    "data": {"id": "ctx_1", "budget": 100, "total_tokens": 20, "parts": []},
                }
            ],
        )
        conn.execute(
            t["personas"].insert(),
            [
                {
                    "id": "nabi",
                    "user_id": "usr_1",
                    "format": "yaml",
                    "source": "id: nabi",
                    "created_at": T0,
                    "updated_at": T0,
                }
            ],
        )


def _shape(engine: Engine) -> dict[str, Any]:
    """Tables, columns (name, nullable), primary keys, indexes and foreign keys, ignoring type
    spelling."""
    insp = inspect(engine)
    shape = {}
    for table in sorted(insp.get_table_names()):
        shape[table] = {
            "columns": sorted((c["name"], c["nullable"]) for c in insp.get_columns(table)),
            "pk": tuple(insp.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)
            ),
            "fks": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in insp.get_foreign_keys(table)
            ),
        }
    return shape


def test_fresh_database_gets_current_schema(db_url: str) -> None:
    store = Store(db_url)
    try:
        assert _version(store.engine) == CURRENT_VERSION
        assert migrate(store.engine) == CURRENT_VERSION  # a second start changes nothing
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT COUNT(*) FROM schema_version")).scalar()
        assert rows == 1
    finally:
        store.close()


def test_upgrade_from_v1_keeps_every_row(db_url: str) -> None:
    engine = create_db_engine(db_url)
    create_schema_at(engine, 1)
    _fill_v1(engine)
    assert _version(engine) == 1
    engine.dispose()

    store = Store(db_url)  # what a newer server does on start
    try:
        assert _version(store.engine) == CURRENT_VERSION
        user = store.verify_api_key(V1_KEY)  # v2's last_used_at column gets written here
        assert user is not None and user.name == "dad" and user.created_at == T0
        assert store.list_api_keys(user.id)[0].last_used_at is not None
        session = store.get_session(user.id, "ses_1")
        assert (session.title, session.params, session.created_at) == ("old chat", {"k": 2}, T0)
        assert [m.content for m in store.history(user.id, "ses_1")] == [
            "내 고양이 이름은 나비야",
            "나비! 귀엽다",
        ]
        state, version = store.get_memory(user.id, "ses_1")
        assert state.summary == "Dad has a cat named Nabi." and version == 3
        assert store.get_context(user.id, "ses_1", 2).total_tokens == 20
        assert store.get_persona(user.id, "nabi").source == "id: nabi"
        # and the upgraded database works for new writes, ids continuing after the old ones
        new = store.add_message(user.id, "ses_1", "user", "still there?")
        assert new.id > 2
        assert [s.id for s in store.list_sessions(user.id)] == ["ses_1"]
    finally:
        store.close()


def test_upgrade_v2_to_v3_makes_uploads_private_and_keeps_sessions_working(
    db_url: str,
) -> None:
    engine = create_db_engine(db_url)
    create_schema_at(engine, 2)
    _fill_v1(engine)  # usr_1 "dad" uploaded "nabi" and has ses_1
    t = v1_metadata().tables
    persona = {"format": "yaml", "created_at": T0, "updated_at": T0}
    with engine.begin() as conn:
        conn.execute(t["users"].insert(), [{"id": "usr_2", "name": "kid", "created_at": T0}])
        conn.execute(
            t["personas"].insert(),
            [
                # an upload whose user was deleted (v2's SET NULL), and an unused one of dad's
                {**persona, "id": "orphan", "user_id": None, "source": "id: orphan"},
                {**persona, "id": "dads-own", "user_id": "usr_1", "source": "id: dads-own"},
            ],
        )
        session = {
            "title": None,
            "strategy": "buffer",
            "params": {},
            "memory": {},
            "memory_version": 0,
            "created_at": T0,
            "updated_at": T0,
        }
        conn.execute(
            t["sessions"].insert(),
            [
                # the kid chats with dad's upload (global until v3), twice, and with pippa
                {**session, "id": "ses_2", "user_id": "usr_2", "persona_id": "nabi"},
                {**session, "id": "ses_3", "user_id": "usr_2", "persona_id": "nabi"},
                {**session, "id": "ses_4", "user_id": "usr_2", "persona_id": "pippa"},
            ],
        )
    assert _version(engine) == 2
    engine.dispose()

    store = Store(db_url)
    try:
        assert _version(store.engine) == CURRENT_VERSION
        every = {(p.user_id, p.id): p for p in store.list_personas()}
        local = store.get_user_by_name(LOCAL_USER).id
        assert set(every) == {
            ("usr_1", "nabi"),
            ("usr_1", "dads-own"),
            ("usr_2", "nabi"),  # a copy: the kid's sessions keep their persona
            (local, "orphan"),  # the local user (auth off) owns what had no owner
        }
        assert every[("usr_2", "nabi")].source == every[("usr_1", "nabi")].source == "id: nabi"
        assert every[("usr_1", "nabi")].created_at == T0
        assert [p.id for p in store.list_personas("usr_2")] == ["nabi"]
        with pytest.raises(NotFound):
            store.get_persona("usr_2", "dads-own")
        assert store.get_session("usr_2", "ses_2").persona_id == "nabi"
        assert store.get_session("usr_1", "ses_1").persona_id == "pippa"
        # the per-user key is in force: a third user may take any id, nobody twice
        store.get_or_create_user("guest")
        guest = store.get_user_by_name("guest").id
        store.save_persona(guest, "dads-own", "id: dads-own", "yaml")
        with pytest.raises(Conflict):
            store.save_persona("usr_1", "dads-own", "id: dads-own", "yaml")
        assert store.get_or_create_user(LOCAL_USER).id == local  # no second local user
    finally:
        store.close()


def test_upgrade_v8_to_v9_moves_budget_tokens_out_of_the_params(db_url: str) -> None:
    engine = create_db_engine(db_url)
    create_schema_at(engine, 8)
    _fill_v1(engine)  # ses_1: params {"k": 2}, no budget
    session = {
        "user_id": "usr_1",
        "persona_id": "pippa",
        "title": None,
        "strategy": "window",
        "memory": {},
        "memory_version": 0,
        "created_at": T0,
        "updated_at": T0,
    }
    with engine.begin() as conn:
        conn.execute(
            v1_metadata().tables["sessions"].insert(),
            [
                {
                    **session,
                    "id": "ses_2",
                    "params": {"k": 3, "budget_tokens": 900, "scope": "user"},
                },
                {**session, "id": "ses_3", "params": {"budget_tokens": None}},
                # never accepted by the API; kept where it was rather than lost
                {**session, "id": "ses_4", "params": {"budget_tokens": "lots"}},
            ],
        )
    engine.dispose()

    store = Store(db_url)
    try:
        assert _version(store.engine) == CURRENT_VERSION
        found = {s.id: (s.params, s.budget_tokens) for s in store.list_sessions("usr_1", limit=10)}
        assert found == {
            "ses_1": ({"k": 2}, None),
            "ses_2": ({"k": 3, "scope": "user"}, 900),
            "ses_3": ({}, None),
            "ses_4": ({"budget_tokens": "lots"}, None),
        }
        # clients see the session as before: the budget among the memory params
        assert store.get_session("usr_1", "ses_2").memory_params() == {
            "k": 3,
            "scope": "user",
            "budget_tokens": 900,
        }
        assert store.export_session("usr_1", "ses_2")["session"]["params"] == {
            "k": 3,
            "scope": "user",
            "budget_tokens": 900,
        }
    finally:
        store.close()


def test_upgraded_schema_equals_fresh_schema(db_url: str, make_store) -> None:  # type: ignore[no-untyped-def]
    engine = create_db_engine(db_url)
    create_schema_at(engine, 1)
    migrate(engine)
    upgraded = _shape(engine)
    with engine.begin() as conn:  # start over in the same database, fresh this time
        for table in (
            "session_lorebooks",
            "lorebooks",
            "contexts",
            "messages",
            "api_keys",
            "sessions",
            "personas",
            "relationships",
            "users",
            "schema_version",
        ):
            conn.execute(text(f"DROP TABLE {table}"))
    migrate(engine)
    assert _shape(engine) == upgraded
    engine.dispose()


def test_failed_step_rolls_back_and_keeps_data(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = create_db_engine(db_url)
    create_schema_at(engine, 1)
    _fill_v1(engine)

    def broken(conn: Connection) -> None:
        conn.execute(text("DELETE FROM messages"))  # half-done work that must not survive
        raise RuntimeError("step 3 failed")

    steps = (*migrations.STEPS, Step(CURRENT_VERSION + 1, "broken", broken))
    monkeypatch.setattr(migrations, "STEPS", steps)
    monkeypatch.setattr(migrations, "CURRENT_VERSION", CURRENT_VERSION + 1)
    with pytest.raises(RuntimeError, match="step 3 failed"):
        migrate(engine)
    assert _version(engine) == 1  # not even step 2 was kept: one transaction
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar() == 2
    engine.dispose()


def test_newer_database_is_refused(db_url: str) -> None:
    store = Store(db_url)
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO schema_version (version, applied_at) VALUES (:v, :t)"),
            {"v": CURRENT_VERSION + 5, "t": T0},
        )
    store.close()
    with pytest.raises(RuntimeError, match=f"version {CURRENT_VERSION + 5}, newer"):
        Store(db_url)


def test_create_schema_at_rejects_unknown_versions(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with pytest.raises(ValueError, match="schema version must be"):
        create_schema_at(engine, CURRENT_VERSION + 1)
    engine.dispose()
