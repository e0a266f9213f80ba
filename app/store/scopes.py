"""The read behind Store.scope_histories: a scope's sessions and the marks that validate their
cached histories, in one query, with the records built only for rows that changed.

Why: a recall from a new session over 100 sessions x 100 turns ran two queries in two read
transactions (the sessions, then a grouped count/max id over their complete messages) and
rebuilt 100 SessionRecords every turn, parsing two JSON values of each: ~12x one session's
cached history read (PostgreSQL: ~18x). The count/max id check stays (it is what HistoryCache
validates with, and what sees another replica's insert, delete or completed reply); it rides
along in the sessions query as two correlated subqueries per session, so one round trip and
one transaction carry both. The
session columns are read as text and a record is rebuilt only when that text changed, so
nothing served is staler than the row read in this very query.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, String, Text, bindparam, cast, func, select
from sqlalchemy.orm import Session

from app.store.models import ChatSession, Message
from app.store.records import SessionRecord
from memory.types import MemoryScope

# the columns a record is built from, as read: compared whole to tell whether it changed
_RowKey = tuple[
    str, str, str, str | None, str, str | None, int | None, str | None, datetime, datetime
]


@dataclass(frozen=True)
class ScopeRow:
    """A session of the scope: its record (shared between reads: callers must not mutate it),
    the message ids its user made it forget, and the count and max id of its complete
    messages as of this read."""

    record: SessionRecord
    forgotten: frozenset[int]
    count: int
    top: int | None


@functools.cache
def _query(scope: MemoryScope, excludes: bool) -> Select[Any]:
    """Built once per shape, with bound parameters: building it cost a third of a warm read."""
    user_id: BindParameter[str] = bindparam("user_id", type_=String)
    persona_id: BindParameter[str] = bindparam("persona_id", type_=String)
    t = ChatSession.__table__.c
    m = Message.__table__.c
    # correlated per session: each an index range of ix_messages_session_status, whatever the
    # planner's statistics (a grouped subquery joined back was planned badly before ANALYZE)
    complete = (m.session_id == t.id) & (m.status == "complete")
    n = select(func.count(m.id)).where(complete).scalar_subquery()
    top = select(func.max(m.id)).where(complete).scalar_subquery()
    # params and the forgotten ids as text: parsed only when a session's row changed
    q = select(
        t.id, t.user_id, t.persona_id, t.title, t.strategy, cast(t.params, Text),
        t.budget_tokens, t.memory["forgotten"].as_string(), t.created_at, t.updated_at,
        n, top,
    ).where(t.user_id == user_id)  # fmt: skip
    if scope == "persona":
        q = q.where(t.persona_id == persona_id)
    if excludes:
        q = q.where(t.id != bindparam("exclude", type_=String))
    return q.order_by(t.created_at, t.id)


def _build(key: _RowKey) -> tuple[SessionRecord, frozenset[int]]:
    sid, user, persona, title, strategy, params, budget, forgotten, created, updated = key
    record = SessionRecord.model_construct(
        id=sid, user_id=user, persona_id=persona, title=title, strategy=strategy,
        params=dict(json.loads(params) or {}) if params else {},
        created_at=created, updated_at=updated, budget_tokens=budget,
    )  # fmt: skip
    return record, frozenset(json.loads(forgotten) or ()) if forgotten else frozenset()


class ScopeReader:
    """Remembers the records it built, keyed by session id, each with the row text it came
    from; bounded (a record is cheap to rebuild, so the oldest are simply dropped)."""

    def __init__(self, max_sessions: int = 20_000) -> None:
        self.max_sessions = max_sessions
        self._built: dict[str, tuple[_RowKey, SessionRecord, frozenset[int]]] = {}
        self._lock = threading.Lock()
        self.builds = 0  # for tests

    def read(
        self,
        db: Session,
        user_id: str,
        persona_id: str,
        scope: MemoryScope,
        exclude: str | None = None,
    ) -> list[ScopeRow]:
        """The scope's sessions other than `exclude`, oldest first; none for "session"."""
        if scope == "session":
            return []
        out = []
        args = {"user_id": user_id, "persona_id": persona_id, "exclude": exclude}
        for row in db.execute(_query(scope, exclude is not None), args):
            key: _RowKey = tuple(row[:10])
            hit = self._built.get(key[0])
            if hit is not None and hit[0] == key:
                record, forgotten = hit[1], hit[2]
            else:
                record, forgotten = _build(key)
                self.builds += 1
                self._remember(key, record, forgotten)
            out.append(ScopeRow(record, forgotten, int(row[10] or 0), row[11]))
        return out

    def _remember(self, key: _RowKey, record: SessionRecord, forgotten: frozenset[int]) -> None:
        with self._lock:
            self._built.pop(key[0], None)  # re-inserted last: the oldest go first
            self._built[key[0]] = (key, record, forgotten)
            while len(self._built) > self.max_sessions:
                self._built.pop(next(iter(self._built)))
