from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from app.store.db import create_db_engine


def test_sqlite_file_created_under_missing_dirs_with_wal_fk_and_sync(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "memento.db"
    engine = create_db_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert db.exists()
    finally:
        engine.dispose()


def test_sqlite_transactions_commit_and_roll_back(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("abort")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM t")).scalars().all() == [1]
    finally:
        engine.dispose()


def test_plain_postgresql_url_uses_psycopg3() -> None:
    engine = create_db_engine("postgresql://postgres@127.0.0.1:5432/test")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        create_db_engine("mysql://u@h/db")
