"""Store fixtures: every store test runs on real SQLite (tmp_path) AND real PostgreSQL.

PostgreSQL: 127.0.0.1:5432, trust auth, database `test` (override with MEMENTO_TEST_PG_URL).
Each test gets a fresh schema (search_path), dropped afterwards; the PostgreSQL variants skip
with the reason when the server is unreachable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from app.store.repo import Store

PG_URL = os.environ.get("MEMENTO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_status: str | None = None  # None: not probed yet; "" reachable; else the skip reason


def _pg_unreachable() -> str:
    global _pg_status
    if _pg_status is None:
        import psycopg

        try:
            with psycopg.connect(PG_URL.replace("+psycopg", ""), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_status = ""
        except Exception as e:  # any failure to reach it is a reason to skip, stated
            _pg_status = f"PostgreSQL at {PG_URL} unreachable: {type(e).__name__}: {e}"
    return _pg_status


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections live in a fresh, empty schema."""
    reason = _pg_unreachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = "memento_test_" + secrets.token_hex(6)
    raw = PG_URL.replace("+psycopg", "")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'memento.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def make_store(db_url: str) -> Iterator[Callable[[], Store]]:
    """Open Stores on the test's database (several = a restart, or two replicas)."""
    opened: list[Store] = []

    def make() -> Store:
        store = Store(db_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    a, b = Store(db_url), Store(db_url)  # two replicas sharing one database
    try:
        yield a, b
    finally:
        a.close()
        b.close()
