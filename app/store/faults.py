"""Database failures that are the world's, not a bug: a full disk, a database that went away.
The service answers them with a clear status (app/errors.py) instead of a 500, and keeps what
it could not write yet (app/service/reply_store.py) instead of dropping it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# what the drivers say: SQLite's SQLITE_FULL (max_page_count or the filesystem), PostgreSQL's
# disk_full class 53100 ("could not extend file", "No space left on device")
_FULL = ("database or disk is full", "no space left on device", "could not extend file")


@dataclass(frozen=True)
class StoreFault:
    status: int  # 507 (storage full) or 503 (unavailable)
    code: str
    message: str
    retry_after: int | None  # seconds, for a 503


def store_fault(exc: BaseException) -> StoreFault | None:
    """What a database exception means for the client, or None when it is not a fault of the
    database's environment (a bug, a constraint: those stay 500 / their own mapping)."""
    if not isinstance(exc, DBAPIError):
        return None
    detail = str(exc.orig or exc).strip().splitlines()[0][:300]
    if (
        any(marker in detail.lower() for marker in _FULL)
        or getattr(exc.orig, "sqlstate", None) == "53100"
    ):
        return StoreFault(
            507,
            "storage_full",
            f"the database's storage is full ({detail}); nothing was stored. Free space and "
            "try again: the service recovers by itself",
            None,
        )
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        return StoreFault(
            503,
            "store_unavailable",
            f"the database is unavailable ({detail}); try again shortly",
            5,
        )
    return None
