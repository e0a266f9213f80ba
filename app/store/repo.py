"""The Store: every read and write of users, sessions, messages, memory and contexts.

Sync methods, one short transaction each (the service calls them through asyncio.to_thread).
Every session-scoped method takes the caller's user id and raises NotFound for a session that
does not exist OR belongs to another user: callers can never learn that another user's session
exists. Records returned are plain pydantic copies, safe to hand to other threads.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store import transfer
from app.store.db import backend_name, create_db_engine, make_sessionmaker
from app.store.errors import LimitExceeded, NotFound
from app.store.history import HistoryCache
from app.store.keys import KeysMixin
from app.store.locks import TurnLock, acquire_turn_lock
from app.store.lore import LoreMixin
from app.store.messages import MessagesMixin, imported_title
from app.store.migrations import migrate
from app.store.models import (
    ChatSession,
    Message,
    User,
    utcnow,
)
from app.store.records import (
    SessionRecord,
    UserRecord,
)
from app.store.relationships import RelationshipsMixin
from app.store.rows import (
    count_sessions,
    message_record,
    new_id,
    own,
    session_record,
    user_record,
)
from app.store.scopes import ScopeReader
from memory.types import MemoryState

__all__ = ["LOCAL_USER", "Store", "new_id"]

LOCAL_USER = "local"  # the single user when auth is off


def _strategy_only(params: dict[str, Any] | None) -> None:
    """budget_tokens has a column of its own (schema v9): one left in params would be stored
    where nothing reads it, and the session would silently lose its cap."""
    if params is not None and "budget_tokens" in params:
        raise ValueError("budget_tokens is a session column: pass it as budget_tokens=")


def instance_name() -> str:
    """host:pid:tag, at most 80 characters (the owner column): unique per running Store."""
    tag = f":{os.getpid()}:{secrets.token_hex(4)}"
    return socket.gethostname()[: 80 - len(tag)] + tag


class Store(MessagesMixin, RelationshipsMixin, KeysMixin, LoreMixin):
    """Persistence for Memento. `Store(url)` connects and migrates the schema to current."""

    def __init__(
        self,
        url: str,
        *,
        migrate_schema: bool = True,
        echo: bool = False,
        owner: str | None = None,
        lease_seconds: float = 6.0,  # Settings.reply_lease_seconds
        history_cache_messages: int = 200_000,  # Settings.history_cache_messages
    ):
        """`owner` names this running instance on the replies it generates (default: host,
        pid and a random tag, so a restarted process is a new owner); a pending reply's lease
        lasts `lease_seconds` past its last renewal."""
        self.url = url
        self.owner = owner or instance_name()
        self.lease_seconds = lease_seconds
        self.engine: Engine = create_db_engine(url, echo=echo)
        self._sm = make_sessionmaker(self.engine)
        # reads on SQLite begin DEFERRED (concurrent with the writer under WAL); see db.py
        self._read_sm = make_sessionmaker(self.engine.execution_options(memento_read=True))
        self.history_cache = HistoryCache(history_cache_messages)
        self.scope_reader = ScopeReader()
        if migrate_schema:
            migrate(self.engine)

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return backend_name(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A write transaction: commits on success, rolls back on error."""
        with self._sm.begin() as db:
            yield db

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._read_sm.begin() as db:
            yield db

    # ---- users -------------------------------------------------------------------------

    def get_or_create_user(self, name: str = LOCAL_USER) -> UserRecord:
        """The user called `name`, created on first use."""
        name = name.strip()
        if not name:
            raise ValueError("user name must not be empty")
        try:
            with self._tx() as db:
                user = db.scalar(select(User).where(User.name == name))
                if user is None:
                    user = User(id=new_id("usr"), name=name, created_at=utcnow())
                    db.add(user)
                    db.flush()
                return user_record(user)
        except IntegrityError:  # another process created it between our read and insert
            return self.get_user_by_name(name)

    def get_user(self, user_id: str) -> UserRecord:
        with self._read() as db:
            user = db.get(User, user_id)
            if user is None:
                raise NotFound("user", user_id)
            return user_record(user)

    def get_user_by_name(self, name: str) -> UserRecord:
        with self._read() as db:
            user = db.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound("user", name)
            return user_record(user)

    def list_users(self) -> list[UserRecord]:
        with self._read() as db:
            return [user_record(u) for u in db.scalars(select(User).order_by(User.created_at))]

    # ---- sessions ----------------------------------------------------------------------

    def create_session(
        self,
        user_id: str,
        persona_id: str,
        strategy: str,
        params: dict[str, Any] | None = None,
        title: str | None = None,
        memory: MemoryState | None = None,
        max_sessions: int | None = None,
        budget_tokens: int | None = None,
    ) -> SessionRecord:
        """A new session ("ses_<hex>"). LimitExceeded if the user already has max_sessions."""
        _strategy_only(params)
        with self._tx() as db:
            if max_sessions is not None:
                count = count_sessions(db, user_id)
                if count >= max_sessions:
                    raise LimitExceeded("sessions per user", count + 1, max_sessions)
            now = utcnow()
            row = ChatSession(
                id=new_id("ses"),
                user_id=user_id,
                persona_id=persona_id,
                title=title,
                strategy=strategy,
                params=dict(params or {}),
                budget_tokens=budget_tokens,
                memory=(memory or MemoryState()).model_dump(mode="json"),
                memory_version=0,
                created_at=now,
                updated_at=now,
            )
            db.add(row)
            db.flush()
            return session_record(row)

    def get_session(self, user_id: str, session_id: str) -> SessionRecord:
        """The session; NotFound if missing or another user's."""
        with self._read() as db:
            return session_record(own(db, user_id, session_id))

    def list_sessions(self, user_id: str, limit: int = 50, offset: int = 0) -> list[SessionRecord]:
        """The user's sessions, most recently active first."""
        with self._read() as db:
            rows = db.scalars(
                select(ChatSession)
                .where(ChatSession.user_id == user_id)
                .order_by(ChatSession.updated_at.desc(), ChatSession.id)
                .limit(limit)
                .offset(offset)
            )
            return [session_record(r) for r in rows]

    def count_sessions(self, user_id: str) -> int:
        with self._read() as db:
            return count_sessions(db, user_id)

    def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        title: str | None = None,
        strategy: str | None = None,
        params: dict[str, Any] | None = None,
        budget_tokens: int | None = None,
        persona_id: str | None = None,
        clear_title: bool = False,
    ) -> SessionRecord:
        """Change what is given (None = unchanged; clear_title=True sets the title to None).
        `params` and `budget_tokens` are the memory's settings, replaced together: with params
        given, budget_tokens None means no cap; without, budget_tokens must be None too."""
        _strategy_only(params)
        if params is None and budget_tokens is not None:
            raise ValueError("budget_tokens is replaced with the params: pass both")
        with self._tx() as db:
            row = own(db, user_id, session_id)
            if title is not None:
                row.title = title
            elif clear_title:
                row.title = None
            if strategy is not None:
                row.strategy = strategy
            if params is not None:
                row.params = dict(params)
                row.budget_tokens = budget_tokens
            if persona_id is not None:
                row.persona_id = persona_id
            row.updated_at = utcnow()
            db.flush()
            return session_record(row)

    def delete_session(self, user_id: str, session_id: str) -> None:
        """Delete the session with its messages, contexts and memory (FK cascade), and its
        gist from the relationship (its turns leave every scope with its messages)."""
        with self._tx() as db:
            row = own(db, user_id, session_id)
            persona_id = row.persona_id
            db.execute(delete(ChatSession).where(ChatSession.id == row.id))
        self.history_cache.invalidate(session_id)
        self.update_relationship(
            user_id,
            persona_id,
            lambda r: r.without_session(session_id) if r.gist(session_id) else None,
        )

    # ---- export / import ---------------------------------------------------------------

    def export_session(self, user_id: str, session_id: str) -> dict[str, Any]:
        """The whole session as JSON-ready data: persona, strategy, params, messages, memory."""
        with self._read() as db:
            row = own(db, user_id, session_id)
            messages = [
                message_record(m)
                for m in db.scalars(
                    select(Message).where(Message.session_id == session_id).order_by(Message.id)
                )
            ]
            memory = MemoryState.model_validate(row.memory or {})
        books = [
            transfer.ExportedBook(id=b.id, data=b.data)
            for b in self.session_books(user_id, session_id)
        ]
        return transfer.export_data(session_record(row), messages, memory, books)

    def import_session(
        self,
        user_id: str,
        data: Any,
        max_messages: int | None = None,
        max_sessions: int | None = None,
    ) -> SessionRecord:
        """A new session for `user_id` from export_session data (message ids are remapped,
        memory state follows them). Its lorebooks are attached again: the user's own book
        when the id and content match (a restore), else a new copy. InvalidData names the bad
        field; LimitExceeded if the export has more than max_messages messages."""
        parsed = transfer.parse_export(data)
        if max_messages is not None and len(parsed.messages) > max_messages:
            raise LimitExceeded("history import messages", len(parsed.messages), max_messages)
        new_messages = transfer.new_messages(parsed)
        params, budget = transfer.split_budget(parsed.session.params)
        session = self.create_session(
            user_id,
            parsed.session.persona,
            parsed.session.strategy,
            params,
            # a copy says so: "<the original's title> (imported)"
            imported_title(parsed.session.title, new_messages),
            max_sessions=max_sessions,
            budget_tokens=budget,
        )
        copies: list[str] = []
        try:
            book_ids = self._attach_imported(user_id, session.id, parsed.lorebooks, copies)
            new = self.add_messages(user_id, session.id, new_messages)
            old_to_new = {
                old.id: n.id
                for old, n in zip(parsed.messages, new, strict=True)
                if old.id is not None
            }
            state = transfer.remap_memory(parsed.memory, old_to_new)
            self.save_memory(user_id, session.id, transfer.remap_timers(state, book_ids))
        except Exception:
            self.delete_session(user_id, session.id)
            for book_id in copies:
                self.delete_book(user_id, book_id)
            raise
        return self.get_session(user_id, session.id)

    def _attach_imported(
        self,
        user_id: str,
        session_id: str,
        books: list[transfer.ExportedBook],
        copies: list[str],
    ) -> dict[str, str]:
        """Attach the exported books; the exported id -> the id attached (new copies are
        appended to `copies`, for the caller to remove if the import fails)."""
        own = {b.id: b for b in self.list_books(user_id)}
        ids: dict[str, str] = {}
        for book in books:
            mine = own.get(book.id)
            if mine is None or mine.data != book.data:
                mine = self.create_book(user_id, book.data)
                copies.append(mine.id)
            self.attach_book(user_id, session_id, mine.id)
            ids[book.id] = mine.id
        return ids

    # ---- cross-replica turn lock ------------------------------------------------------

    def acquire_turn_lock(self, session_id: str, wait_seconds: float) -> TurnLock | None:
        """Serialize turns on a session across processes (PostgreSQL advisory lock; a no-op
        handle on SQLite). None if another turn still holds it after wait_seconds. Blocking:
        call via asyncio.to_thread; release() the handle when the turn is stored."""
        return acquire_turn_lock(self.engine, session_id, wait_seconds)

    # ---- maintenance -------------------------------------------------------------------

    def integrity_check(self) -> str:
        """'ok' when the database is sound (SQLite PRAGMA integrity_check; PostgreSQL: ping)."""
        with self.engine.connect() as conn:
            if self.backend == "sqlite":
                rows = conn.exec_driver_sql("PRAGMA integrity_check").all()
                return "; ".join(str(r[0]) for r in rows)
            conn.exec_driver_sql("SELECT 1")
            return "ok"
