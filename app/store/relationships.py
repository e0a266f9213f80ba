"""Relationships (what a persona remembers of a user across sessions) and the sessions of a
memory scope (mixed into Store)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.history import HistoryCache
from app.store.models import ChatSession, Message, Relationship, utcnow
from app.store.records import SessionRecord
from app.store.rows import session_record
from app.store.scopes import ScopeReader
from memory.relationship import RelationshipState
from memory.types import MemoryScope, StoredMessage


@dataclass(frozen=True)
class ScopeHistory:
    """Another session of a memory scope: its record and its recallable turns (completed, not
    forgotten by its user, newer than the relationship's last wipe)."""

    session: SessionRecord
    history: list[StoredMessage]


@dataclass(frozen=True)
class RelationshipRecord:
    persona_id: str
    state: RelationshipState
    updated_at: datetime | None


class RelationshipsMixin:
    """Needs `_tx()`, `_read()`, `history_cache` and `scope_reader` from Store."""

    history_cache: HistoryCache
    scope_reader: ScopeReader

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...

    # ---- relationships -------------------------------------------------------------------

    def get_relationship(self, user_id: str, persona_id: str) -> RelationshipState:
        """The (user, persona) relationship; empty when they have none yet."""
        with self._read() as db:
            row = db.get(Relationship, (user_id, persona_id))
            return RelationshipState.model_validate(row.data if row else {})

    def list_relationships(self, user_id: str) -> list[RelationshipRecord]:
        """The user's relationships that hold anything, plus one for every persona the user
        has sessions with."""
        with self._read() as db:
            rows = {
                r.persona_id: r
                for r in db.scalars(select(Relationship).where(Relationship.user_id == user_id))
            }
            personas = set(
                db.scalars(
                    select(ChatSession.persona_id).where(ChatSession.user_id == user_id).distinct()
                )
            )
            return [
                RelationshipRecord(
                    persona_id=p,
                    state=RelationshipState.model_validate(rows[p].data if p in rows else {}),
                    updated_at=rows[p].updated_at if p in rows else None,
                )
                for p in sorted(personas | rows.keys())
            ]

    def update_relationship(
        self,
        user_id: str,
        persona_id: str,
        change: Callable[[RelationshipState], RelationshipState | None],
    ) -> RelationshipState:
        """Read-modify-write of the relationship under a row lock (created on first write).
        `change` returns the new state, or None to leave it as it is."""
        with self._tx() as db:
            row = db.scalar(
                select(Relationship)
                .where(Relationship.user_id == user_id, Relationship.persona_id == persona_id)
                .with_for_update()
            )
            state = RelationshipState.model_validate(row.data if row else {})
            new = change(state)
            if new is None or new == state:
                return state
            data = new.model_dump(mode="json")
            if row is None:
                db.add(
                    Relationship(
                        user_id=user_id,
                        persona_id=persona_id,
                        data=data,
                        version=1,
                        updated_at=utcnow(),
                    )
                )
            else:
                row.data, row.version, row.updated_at = data, row.version + 1, utcnow()
            return new

    def delete_relationship(self, user_id: str, persona_id: str) -> None:
        with self._tx() as db:
            db.execute(
                delete(Relationship).where(
                    Relationship.user_id == user_id, Relationship.persona_id == persona_id
                )
            )

    # ---- memory scopes ------------------------------------------------------------------

    def scope_sessions(
        self, user_id: str, persona_id: str, scope: MemoryScope, exclude: str | None = None
    ) -> list[tuple[SessionRecord, set[int]]]:
        """The user's other sessions a session of `persona_id` may recall from: those with
        the same persona ("persona"), or all of the user's ("user"); none for "session"; each
        with the message ids its user made it forget. Never another user's: the user id is in
        the query itself."""
        if scope == "session":
            return []
        # plain columns, not ORM rows: every turn of a session with a scope lists them
        t = ChatSession.__table__.c
        # only the forgotten ids of the memory JSON: the whole of it (summary versions,
        # removed facts...) was parsed for 100 sessions every turn
        q = select(
            t.id, t.user_id, t.persona_id, t.title, t.strategy, t.params, t.budget_tokens,
            t.memory["forgotten"].label("forgotten"), t.created_at, t.updated_at,
        ).where(t.user_id == user_id)  # fmt: skip
        if scope == "persona":
            q = q.where(t.persona_id == persona_id)
        if exclude is not None:
            q = q.where(t.id != exclude)
        with self._read() as db:
            rows = db.execute(q.order_by(t.created_at, t.id)).all()
        # the forgotten ids straight from the JSON: validating 100 MemoryStates every turn
        # cost more than the rest of the lookup
        return [
            (
                SessionRecord.model_construct(
                    id=r.id, user_id=r.user_id, persona_id=r.persona_id, title=r.title,
                    strategy=r.strategy, params=dict(r.params or {}),
                    created_at=r.created_at, updated_at=r.updated_at,
                    budget_tokens=r.budget_tokens,
                ),
                set(r.forgotten or ()),
            )
            for r in rows
        ]  # fmt: skip

    def scope_histories(
        self,
        user_id: str,
        persona_id: str,
        scope: MemoryScope,
        exclude: str | None = None,
        after_id: int = 0,
    ) -> list[ScopeHistory]:
        """scope_sessions() with each one's recallable turns: one query for the sessions and
        the checks of their cached histories (app/store/scopes.py)."""
        with self._read() as db:
            rows = self.scope_reader.read(db, user_id, persona_id, scope, exclude)
            out = []
            for r in rows:
                turns = self.history_cache.read_marked(db, r.record.id, r.count, r.top)
                if r.forgotten or after_id:
                    turns = [m for m in turns if m.id > after_id and m.id not in r.forgotten]
                out.append(ScopeHistory(r.record, turns))
        return out

    def message_session(self, user_id: str, message_id: int) -> SessionRecord:
        """The user's session that holds the message (a recalled turn of another session is
        forgotten there); NotFound for a message of no session of this user."""
        with self._read() as db:
            row = db.scalar(
                select(ChatSession)
                .join(Message, Message.session_id == ChatSession.id)
                .where(Message.id == message_id, ChatSession.user_id == user_id)
            )
            if row is None:
                raise NotFound("message", message_id)
            return session_record(row)

    def max_message_id(self) -> int:
        """The newest message id of the whole store (a wipe's mark: ids only grow)."""
        with self._read() as db:
            return int(db.scalar(select(func.max(Message.id))) or 0)
