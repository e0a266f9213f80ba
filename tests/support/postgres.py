"""A throwaway PostgreSQL schema for a test: the tests that need PostgreSQL share one database
(127.0.0.1:5432, trust auth, database `test`, or MEMENTO_TEST_PG_URL), so each gets a fresh,
empty schema of its own (connections find it through `search_path`), dropped afterwards.

Used by tests/app/store/conftest.py (every store test on PostgreSQL too) and
tests/faults/test_postgres.py (which also names its server's connections, to kill only those).
The benchmarks make their own: they do not import from tests/.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import pytest

PG_URL = os.environ.get("MEMENTO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RAW_URL = PG_URL.replace("+psycopg", "")  # psycopg's own form, for admin connections

_status: str | None = None  # None: not probed yet; "" reachable; else why not


def pg_unreachable() -> str:
    """Why PostgreSQL cannot be used (the reason a test skips with), or "" when it can. Probed
    once per process."""
    global _status
    if _status is None:
        try:
            import psycopg

            with psycopg.connect(RAW_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _status = ""
        except Exception as e:  # any failure to reach it is a reason to skip, stated
            _status = f"PostgreSQL at {PG_URL} unreachable: {type(e).__name__}: {e}"
    return _status


class Schema(NamedTuple):
    url: str  # an SQLAlchemy URL whose connections live in the schema
    name: str


@contextmanager
def throwaway_schema(prefix: str, *, application_name: bool = False) -> Iterator[Schema]:
    """A fresh, empty schema named `prefix` + random hex, dropped (with what the test put in
    it) on exit. `application_name`: the URL's connections are named after the schema too, so
    a test can find them in pg_stat_activity. The test skips, saying why, when PostgreSQL is
    unreachable."""
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = prefix + secrets.token_hex(6)
    with psycopg.connect(RAW_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    url = f"{PG_URL}?options=-csearch_path%3D{name}"
    if application_name:
        url += f"&application_name={name}"
    try:
        yield Schema(url, name)
    finally:
        with psycopg.connect(RAW_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
