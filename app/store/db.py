"""Engine and session factory: SQLite (WAL) by default, PostgreSQL via postgresql+psycopg URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control from pysqlite (SQLAlchemy's documented recipe for SQLite
    # transactions) so that BEGIN IMMEDIATE below is ours to emit.
    dbapi_conn.isolation_level = None
    # WAL lets readers proceed while one writer commits; NORMAL sync is durable at WAL
    # checkpoints and loses at most the last transactions on power loss, never corrupts.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred read-then-write transaction fails with "database is locked" when another
    # writer got in first; taking the write lock at BEGIN makes writers queue on busy_timeout
    # instead. Read-only transactions (execution option memento_read) stay deferred so that
    # under WAL they run alongside the writer.
    if conn.get_execution_options().get("memento_read"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An SQLAlchemy engine for `url`.

    SQLite: the file's directory is created; every connection gets WAL, foreign_keys=ON,
    busy_timeout and synchronous=NORMAL; transactions begin IMMEDIATE (writers wait, not fail).
    PostgreSQL: `postgresql://` and `postgresql+psycopg://` both use psycopg 3.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url, echo)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return _pg_engine(parsed, echo)
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path or "
        "postgresql+psycopg://user@host/db"
    )


def _sqlite_engine(url: str, echo: bool) -> Engine:
    from sqlalchemy import create_engine

    engine = create_engine(
        url,
        echo=echo,
        # the service calls the store from worker threads (asyncio.to_thread)
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _pg_engine(url: Any, echo: bool) -> Engine:
    from sqlalchemy import create_engine

    # During an outage a request must answer (503, app/store/faults.py) within seconds, not
    # hang: connecting gives up after 5 s, and waiting for a pooled connection after 10 s.
    # pre_ping replaces connections the server killed (a restart), so the pool heals itself.
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """ORM sessions that keep loaded attributes after commit (records are copied out anyway)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def backend_name(engine: Engine) -> str:
    """'sqlite' or 'postgresql'."""
    return engine.dialect.name
