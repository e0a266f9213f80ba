"""Store fixtures: every store test runs on real SQLite (tmp_path) AND real PostgreSQL.

PostgreSQL: 127.0.0.1:5432, trust auth, database `test` (override with MEMENTO_TEST_PG_URL).
Each test gets a fresh schema (search_path), dropped afterwards; the PostgreSQL variants skip
with the reason when the server is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.postgres import throwaway_schema

from app.store.repo import Store


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections live in a fresh, empty schema."""
    with throwaway_schema("memento_test_") as schema:
        yield schema.url


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
