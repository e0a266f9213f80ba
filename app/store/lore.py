"""Lorebooks users upload and the sessions they are attached to (mixed into Store).

A book is private to its owner exactly like an uploaded persona: every method takes the
caller's user id, and another user's book answers NotFound as an id that never existed.
The book itself is the V3 `character_book` object, stored as given (validated by the caller:
memory.lore.model.LoreBook.of), so every field round-trips.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.errors import Conflict, LimitExceeded, NotFound
from app.store.models import LoreBookRow, SessionLorebook, utcnow
from app.store.rows import new_id, own

MAX_BOOKS_PER_USER = 200
MAX_BOOKS_PER_SESSION = 10


class LoreBookRecord(BaseModel):
    id: str
    user_id: str
    name: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _record(row: LoreBookRow) -> LoreBookRecord:
    return LoreBookRecord(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        data=dict(row.data or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _own_book(db: Session, user_id: str, book_id: str, lock: bool = False) -> LoreBookRow:
    q = select(LoreBookRow).where(LoreBookRow.id == book_id)
    row = db.scalar(q.with_for_update() if lock else q)
    if row is None or row.user_id != user_id:
        raise NotFound("lorebook", book_id)
    return row


def book_name(data: dict[str, Any]) -> str:
    name = data.get("name")
    return (name.strip() if isinstance(name, str) else "")[:200] or "Untitled lorebook"


class LoreMixin:
    """Needs `_tx()` and `_read()` from Store."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...

    def create_book(self, user_id: str, data: dict[str, Any]) -> LoreBookRecord:
        """A new book ("lb_<hex>"); LimitExceeded past MAX_BOOKS_PER_USER."""
        with self._tx() as db:
            count = db.scalar(
                select(func.count()).select_from(LoreBookRow).where(LoreBookRow.user_id == user_id)
            )
            if (count or 0) >= MAX_BOOKS_PER_USER:
                raise LimitExceeded("lorebooks per user", (count or 0) + 1, MAX_BOOKS_PER_USER)
            now = utcnow()
            row = LoreBookRow(
                id=new_id("lb"),
                user_id=user_id,
                name=book_name(data),
                data=data,
                created_at=now,
                updated_at=now,
            )
            db.add(row)
            db.flush()
            return _record(row)

    def list_books(self, user_id: str) -> list[LoreBookRecord]:
        with self._read() as db:
            q = select(LoreBookRow).where(LoreBookRow.user_id == user_id)
            return [_record(r) for r in db.scalars(q.order_by(LoreBookRow.created_at))]

    def get_book(self, user_id: str, book_id: str) -> LoreBookRecord:
        with self._read() as db:
            return _record(_own_book(db, user_id, book_id))

    def update_book(
        self,
        user_id: str,
        book_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> LoreBookRecord:
        """Apply `change` to the stored book in one transaction (the row locked on
        PostgreSQL): two edits of one book's entries never lose each other."""
        with self._tx() as db:
            row = _own_book(db, user_id, book_id, lock=True)
            data = change(dict(row.data or {}))
            row.data, row.name, row.updated_at = data, book_name(data), utcnow()
            db.flush()
            return _record(row)

    def delete_book(self, user_id: str, book_id: str) -> None:
        with self._tx() as db:
            db.delete(_own_book(db, user_id, book_id))  # its attachments go by cascade

    # ---- attached to sessions ------------------------------------------------------------

    def attach_book(self, user_id: str, session_id: str, book_id: str) -> None:
        """Conflict if already attached; NotFound for another user's session or book."""
        with self._tx() as db:
            own(db, user_id, session_id)
            _own_book(db, user_id, book_id)
            if db.get(SessionLorebook, (session_id, book_id)) is not None:
                raise Conflict(f"lorebook {book_id!r} is already attached to this session")
            count = db.scalar(
                select(func.count())
                .select_from(SessionLorebook)
                .where(SessionLorebook.session_id == session_id)
            )
            if (count or 0) >= MAX_BOOKS_PER_SESSION:
                raise LimitExceeded(
                    "lorebooks per session", (count or 0) + 1, MAX_BOOKS_PER_SESSION
                )
            db.add(SessionLorebook(session_id=session_id, book_id=book_id, attached_at=utcnow()))

    def detach_book(self, user_id: str, session_id: str, book_id: str) -> None:
        """NotFound when the book is not attached (or not the user's)."""
        with self._tx() as db:
            own(db, user_id, session_id)
            link = db.get(SessionLorebook, (session_id, book_id))
            if link is None:
                raise NotFound("lorebook", book_id)
            db.delete(link)

    def session_books(self, user_id: str, session_id: str) -> list[LoreBookRecord]:
        """The books attached to the session, in the order they were attached."""
        with self._read() as db:
            own(db, user_id, session_id)
            q = (
                select(LoreBookRow)
                .join(SessionLorebook, SessionLorebook.book_id == LoreBookRow.id)
                .where(SessionLorebook.session_id == session_id, LoreBookRow.user_id == user_id)
                .order_by(SessionLorebook.attached_at, LoreBookRow.id)
            )
            return [_record(r) for r in db.scalars(q)]
