"""A per-session cache of the completed history, the list every turn hands the memory strategy.

Why: building 10k `StoredMessage`s from rows costs 130-190 ms on a 2-core CPU, and a turn reads
the history twice (assemble, then observe). Appends are the common change, so a read checks the
cached copy against the database with one aggregate query (count and max id of the complete
messages) and fetches only the rows past the cached max id. Anything else (a delete, an edit,
a reply completed out of id order) reloads the whole session.

The check runs against the database on every read, so replicas sharing a PostgreSQL database
never serve each other stale histories (its ids never repeat). SQLite may reuse the id of a
deleted newest row; deletes and edits made through this Store also invalidate the entry, and
a generation counter keeps a read that raced with one from publishing what it saw before it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.store.models import Message
from app.store.records import Role
from memory.types import StoredMessage


@dataclass(frozen=True)
class _Entry:
    messages: tuple[StoredMessage, ...]
    top: int  # max id among them


def _complete(session_id: str, after: int | None = None) -> Select[int, Role, str, int, datetime]:
    q = select(Message.id, Message.role, Message.content, Message.tokens, Message.created_at)
    q = q.where(Message.session_id == session_id, Message.status == "complete")
    if after is not None:
        q = q.where(Message.id > after)
    return q.order_by(Message.id)


def _load(db: Session, session_id: str, after: int | None = None) -> list[StoredMessage]:
    # plain column rows, not ORM objects: the first read of a session loads all of it
    return [
        StoredMessage(
            id=i, role=role, content=content, tokens=tokens, created_at=at, session_id=session_id
        )
        for i, role, content, tokens, at in db.execute(_complete(session_id, after))
    ]


class HistoryCache:
    """LRU over sessions, bounded by the number of cached messages."""

    # A cached message costs ~1 KB plus its text (tracemalloc, soak run): 200k is up to ~300 MB.
    # Not less: a recall scope (a user's other sessions, read_many) larger than the cap would
    # reload from the database on every turn.
    def __init__(self, max_messages: int = 200_000) -> None:
        self.max_messages = max_messages
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self.hits = self.appends = self.loads = 0  # for tests and logs

    def read(self, db: Session, session_id: str) -> list[StoredMessage]:
        """The session's complete messages, oldest first (the caller checked ownership)."""
        count, top = db.execute(
            select(func.count(Message.id), func.max(Message.id)).where(
                Message.session_id == session_id, Message.status == "complete"
            )
        ).one()
        return self.read_marked(db, session_id, count, top)

    def read_many(self, db: Session, session_ids: list[str]) -> dict[str, list[StoredMessage]]:
        """read() of several sessions with one aggregate query for all of their checks (a
        recall over a user's 100 sessions would otherwise pay 100 round trips every turn)."""
        if not session_ids:
            return {}
        marks = {
            sid: (count, top)
            for sid, count, top in db.execute(
                select(Message.session_id, func.count(Message.id), func.max(Message.id))
                .where(Message.session_id.in_(session_ids), Message.status == "complete")
                .group_by(Message.session_id)
            )
        }
        return {sid: self.read_marked(db, sid, *marks.get(sid, (0, None))) for sid in session_ids}

    def read_marked(
        self, db: Session, session_id: str, count: int, top: int | None
    ) -> list[StoredMessage]:
        """read() with the session's count and max id of complete messages already queried
        (in `db`'s transaction, e.g. joined to a scope's sessions query)."""
        with self._lock:
            entry = self._entries.get(session_id)
            generation = self._generation.get(session_id, 0)
        if entry is not None and count == len(entry.messages) and top == (entry.top or None):
            self.hits += 1
            return list(entry.messages)
        messages: list[StoredMessage] | None = None
        # top is None only for a session without complete messages (count 0)
        if (
            entry is not None
            and count > len(entry.messages)
            and top is not None
            and top > entry.top
        ):
            new = _load(db, session_id, after=entry.top)
            if len(entry.messages) + len(new) == count:
                messages = [*entry.messages, *new]
                self.appends += 1
        if messages is None:
            messages = _load(db, session_id)
            self.loads += 1
        self._publish(session_id, generation, messages)
        return messages

    def invalidate(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)
            self._generation[session_id] = self._generation.get(session_id, 0) + 1

    def _publish(self, session_id: str, generation: int, messages: list[StoredMessage]) -> None:
        with self._lock:
            if self._generation.get(session_id, 0) != generation:
                return  # invalidated while we read: the next read reloads
            self._entries[session_id] = _Entry(tuple(messages), messages[-1].id if messages else 0)
            self._entries.move_to_end(session_id)
            total = sum(len(e.messages) for e in self._entries.values())
            while len(self._entries) > 1 and total > self.max_messages:
                _, old = self._entries.popitem(last=False)
                total -= len(old.messages)
