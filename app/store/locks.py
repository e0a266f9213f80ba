"""Cross-process turn locks: one turn at a time per session, across API replicas.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the whole turn (so
two replicas sharing the database serialize turns on one session). SQLite is one machine, and
the service's in-process lock already serializes turns there, so the lock is a no-op handle.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

_POLL_SECONDS = 0.05
# advisory keys share one 64-bit space per database; keep ours apart from the migration lock
_NAMESPACE = b"memento.turn:"


def lock_key(session_id: str) -> int:
    """A stable signed 64-bit key for the session (PostgreSQL bigint)."""
    digest = hashlib.blake2b(_NAMESPACE + session_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class TurnLock:
    """A held lock; release() it exactly once (or use it as a context manager)."""

    def __init__(self, conn: Connection | None, key: int):
        self._conn, self._key = conn, key

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            conn.commit()
        except BaseException:
            _discard(conn)
            raise
        conn.close()

    def __enter__(self) -> TurnLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def acquire_turn_lock(engine: Engine, session_id: str, wait_seconds: float) -> TurnLock | None:
    """Wait up to `wait_seconds` for the session's turn lock; None if still busy (HTTP 409).
    Blocking: call it from a worker thread."""
    key = lock_key(session_id)
    if engine.dialect.name != "postgresql":
        return TurnLock(None, key)
    conn = engine.connect()
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    try:
        while True:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()  # do not sit idle in a transaction while the turn runs
            if got:
                return TurnLock(conn, key)
            if time.monotonic() >= deadline:
                conn.close()  # it never got the lock: safe back in the pool
                return None
            time.sleep(_POLL_SECONDS)
    except BaseException:
        _discard(conn)  # it may hold the lock already (e.g. interrupted after taking it)
        raise


def _discard(conn: Connection) -> None:
    """Close the database connection itself, not just hand it back to the pool: a session-level
    advisory lock lives as long as the server-side session, and a pooled connection that still
    held it would leak the lock (and, advisory locks being re-entrant, hand it to its next
    user)."""
    try:
        conn.invalidate()
    finally:
        conn.close()
