"""Messages, memory state and contexts of a session (mixed into Store)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Result, func, or_, select, update
from sqlalchemy.orm import Session

from app.store.errors import Conflict, NotFound
from app.store.history import HistoryCache
from app.store.models import MESSAGE_STATUSES, ChatSession, ContextRecord, Message, utcnow
from app.store.records import MessageRecord, MessageStatus, NewMessage, Role
from app.store.rows import check_role, message_record, new_id, own, own_message
from memory.types import Context, MemoryState, StoredMessage

TITLE_CHARS = 40  # a title made from the first user message
TITLE_MAX = 200  # the column's size
IMPORTED = " (imported)"


def title_from_message(content: str, limit: int = TITLE_CHARS) -> str | None:
    """A session's title from its first user message: one line, cut at a word near `limit`
    characters with an ellipsis; None for blank text."""
    text = " ".join(content.split())
    if not text:
        return None
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:!?-") + "…"


def imported_title(title: str | None, messages: Sequence[NewMessage]) -> str | None:
    """The title of an imported copy: the original's (or one from its first user message),
    marked as a copy."""
    base = title or next(
        (t for m in messages if m.role == "user" and (t := title_from_message(m.content))), None
    )
    if base is None or base.endswith(IMPORTED):  # a copy of a copy: said once
        return base
    return base[: TITLE_MAX - len(IMPORTED)] + IMPORTED


def _matched(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched: Session.execute is typed as returning a Result,
    and for these statements it is a CursorResult, which counts them."""
    return cast(CursorResult[Any], result).rowcount


class MessagesMixin:
    """Needs `_tx()` and `_read()` from Store."""

    history_cache: HistoryCache
    owner: str  # this running instance, on the pending replies it generates
    lease_seconds: float

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...

    # ---- messages ----------------------------------------------------------------------

    def add_message(
        self,
        user_id: str,
        session_id: str,
        role: Role,
        content: str,
        tokens: int = 0,
        status: MessageStatus = "complete",
        created_at: datetime | None = None,
        context_id: str | None = None,
    ) -> MessageRecord:
        """Insert and COMMIT one message (e.g. the user's, before generation starts)."""
        return self.add_messages(
            user_id,
            session_id,
            [
                NewMessage(
                    role=role, content=content, tokens=tokens, status=status, created_at=created_at
                )
            ],
            context_id=context_id,
        )[0]

    def add_messages(
        self,
        user_id: str,
        session_id: str,
        messages: Sequence[NewMessage],
        context_id: str | None = None,
    ) -> list[MessageRecord]:
        """Insert several messages in one transaction, ids ascending in the given order. A
        session with no title and no messages yet is titled from its first user message."""
        with self._tx() as db:
            session = own(db, user_id, session_id)
            if session.title is None and not db.scalar(
                select(Message.id).where(Message.session_id == session.id).limit(1)
            ):
                first = next((m.content for m in messages if m.role == "user"), None)
                if first is not None:
                    session.title = title_from_message(first)
            rows = []
            for m in messages:
                check_role(m.role)
                pending = m.status == "pending"
                row = Message(
                    session_id=session.id,
                    role=m.role,
                    content=m.content,
                    tokens=m.tokens,
                    status=m.status,
                    created_at=m.created_at or utcnow(),
                    context_id=context_id,
                    owner=self.owner if pending else None,
                    lease_until=self._lease_end() if pending else None,
                )
                db.add(row)
                db.flush()  # assigns ids in insertion order
                rows.append(row)
            session.updated_at = utcnow()
            return [message_record(r) for r in rows]

    def update_message(
        self,
        user_id: str,
        session_id: str,
        message_id: int,
        *,
        content: str | None = None,
        tokens: int | None = None,
        status: MessageStatus | None = None,
        context_id: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> MessageRecord:
        """Set a reply's final content/tokens/status (and link its Context, keep its token
        usage). None = unchanged."""
        with self._tx() as db:
            row = own_message(db, user_id, session_id, message_id)
            if row.status == "complete":  # already in cached histories (edits are rare)
                self.history_cache.invalidate(session_id)
            if content is not None:
                row.content = content
            if tokens is not None:
                row.tokens = tokens
            if usage is not None:
                row.usage = dict(usage)
            if status is not None:
                if status not in MESSAGE_STATUSES:
                    raise ValueError(
                        f"status must be one of {', '.join(MESSAGE_STATUSES)}, got {status!r}"
                    )
                row.status = status
            if context_id is not None:
                row.context_id = context_id
                db.execute(
                    update(ContextRecord)
                    .where(ContextRecord.id == context_id, ContextRecord.session_id == session_id)
                    .values(message_id=row.id)
                )
            db.flush()
            return message_record(row)

    def save_partial_reply(
        self, user_id: str, session_id: str, message_id: int, content: str, tokens: int
    ) -> bool:
        """Checkpoint a reply still being generated, so that a crash keeps what was produced
        (recover_pending then marks it interrupted). One UPDATE, and only of a 'pending' row:
        once the reply is finalized, a checkpoint that lands late is a no-op (False) instead of
        overwriting the final text. Renews the reply's lease too. NotFound, like everywhere, for
        another user's session."""
        owned = select(ChatSession.id).where(
            ChatSession.id == session_id, ChatSession.user_id == user_id
        )
        with self._tx() as db:
            result = db.execute(
                update(Message)
                .where(
                    Message.id == message_id,
                    Message.session_id.in_(owned),
                    Message.status == "pending",
                )
                .values(content=content, tokens=tokens, lease_until=self._lease_end())
                .execution_options(synchronize_session=False)
            )
            if _matched(result):
                return True
            own_message(db, user_id, session_id, message_id)  # the rare miss: say why
            return False

    def get_message(self, user_id: str, session_id: str, message_id: int) -> MessageRecord:
        with self._read() as db:
            return message_record(own_message(db, user_id, session_id, message_id))

    def delete_message(self, user_id: str, session_id: str, message_id: int) -> None:
        """Delete one message (its Context goes with it)."""
        with self._tx() as db:
            row = own_message(db, user_id, session_id, message_id)
            db.delete(row)
        self.history_cache.invalidate(session_id)

    def list_messages(
        self, user_id: str, session_id: str, limit: int = 50, before: int | None = None
    ) -> list[MessageRecord]:
        """The newest `limit` messages with id < before (all statuses), oldest first."""
        with self._read() as db:
            own(db, user_id, session_id)
            q = select(Message).where(Message.session_id == session_id)
            if before is not None:
                q = q.where(Message.id < before)
            rows = list(db.scalars(q.order_by(Message.id.desc()).limit(limit)))
            return [message_record(r) for r in reversed(rows)]

    def count_messages(self, user_id: str, session_id: str) -> int:
        with self._read() as db:
            own(db, user_id, session_id)
            q = select(func.count()).select_from(Message).where(Message.session_id == session_id)
            return int(db.scalar(q) or 0)

    def history(self, user_id: str, session_id: str) -> list[StoredMessage]:
        """Complete messages of the session, oldest first: what memory strategies see.
        Served from the HistoryCache: every turn reads it, and it only grows at the end."""
        with self._read() as db:
            own(db, user_id, session_id)
            return self.history_cache.read(db, session_id)

    def _lease_end(self) -> datetime:
        return utcnow() + timedelta(seconds=self.lease_seconds)

    def renew_leases(self) -> int:
        """Extend the lease of every reply this instance is still generating (app/leases.py
        calls it every third of a lease, whether or not tokens flow: a long prefill makes no
        checkpoint). Count."""
        with self._tx() as db:
            result = db.execute(
                update(Message)
                .where(Message.owner == self.owner, Message.status == "pending")
                .values(lease_until=self._lease_end())
                .execution_options(synchronize_session=False)
            )
            return int(_matched(result) or 0)

    def recover_pending(self, now: datetime | None = None, *, alone: bool = False) -> int:
        """Mark 'interrupted' every 'pending' reply whose lease has run out by `now`: its
        instance died (kill -9, a lost machine) or stopped vouching for it. A reply of a live
        instance, this one or another process or replica on the same database, keeps its lease
        and is left alone; so is every reply of this instance (it settles its own). A pending
        row with no lease (written before schema v6, or imported) counts as expired. Keeps the
        text and token count of the last checkpoint (save_partial_reply). `alone`: the caller
        knows no other instance can use this database (the embedded default under the data
        directory it holds the lock of, app/data_lock.py), so every other owner is dead and
        its replies need not wait for their leases. Count."""
        now = now or utcnow()
        expired = or_(Message.lease_until.is_(None), Message.lease_until < now)
        with self._tx() as db:
            result = db.execute(
                update(Message)
                .where(
                    Message.status == "pending",
                    or_(Message.owner.is_(None), Message.owner != self.owner),
                    *(() if alone else (expired,)),
                )
                .values(status="interrupted")
                .execution_options(synchronize_session=False)
            )
            return int(_matched(result) or 0)

    # ---- memory state ------------------------------------------------------------------

    def get_memory(self, user_id: str, session_id: str) -> tuple[MemoryState, int]:
        """The session's MemoryState and its version (pass it back to save_memory)."""
        with self._read() as db:
            row = own(db, user_id, session_id)
            return MemoryState.model_validate(row.memory or {}), row.memory_version

    def save_memory(
        self,
        user_id: str,
        session_id: str,
        state: MemoryState,
        expected_version: int | None = None,
    ) -> int:
        """Write the state; returns the new version.

        With expected_version, a compare-and-swap: Conflict if someone saved in between (re-read
        with get_memory, merge, retry, or use update_memory). None overwrites unconditionally.
        """
        with self._tx() as db:
            row = own(db, user_id, session_id)
            if expected_version is not None and row.memory_version != expected_version:
                raise Conflict(
                    f"memory of session {session_id} changed (version {row.memory_version}, "
                    f"expected {expected_version})"
                )
            q = update(ChatSession).where(ChatSession.id == session_id)
            if expected_version is not None:
                q = q.where(ChatSession.memory_version == expected_version)
            result = db.execute(
                q.values(
                    memory=state.model_dump(mode="json"),
                    memory_version=ChatSession.memory_version + 1,
                ).execution_options(synchronize_session=False)
            )
            if not _matched(result):
                raise Conflict(f"memory of session {session_id} changed concurrently")
            return int(
                db.scalar(select(ChatSession.memory_version).where(ChatSession.id == session_id))
                or 0
            )

    def update_memory(
        self,
        user_id: str,
        session_id: str,
        change: Callable[[MemoryState], MemoryState | None],
    ) -> MemoryState:
        """Read-modify-write without lost updates: the session row is locked (SELECT ... FOR
        UPDATE on PostgreSQL; SQLite's write transactions already exclude each other) while
        `change` runs, so keep it quick (no model calls). `change` may mutate the state it is
        given and return None, or return a new state. Returns the saved state."""
        with self._tx() as db:
            row = db.scalar(
                select(ChatSession).where(ChatSession.id == session_id).with_for_update()
            )
            if row is None or row.user_id != user_id:
                raise NotFound("session", session_id)
            state = MemoryState.model_validate(row.memory or {})
            changed = change(state)
            new_state = state if changed is None else changed
            row.memory = new_state.model_dump(mode="json")
            row.memory_version = row.memory_version + 1
            return new_state

    # ---- contexts ----------------------------------------------------------------------

    def save_context(
        self, user_id: str, session_id: str, context: Context, message_id: int | None = None
    ) -> Context:
        """Store a Context (assigning "ctx_<hex>" if it has no id) and, given the reply's
        message id, link them both ways. Returns the context with its id."""
        ctx = context if context.id else context.model_copy(update={"id": new_id("ctx")})
        assert ctx.id is not None
        with self._tx() as db:
            own(db, user_id, session_id)
            if message_id is not None:
                msg = own_message(db, user_id, session_id, message_id)
                msg.context_id = ctx.id
            db.add(
                ContextRecord(
                    id=ctx.id,
                    session_id=session_id,
                    message_id=message_id,
                    data=ctx.model_dump(mode="json"),
                    created_at=utcnow(),
                )
            )
        return ctx

    def get_context(self, user_id: str, session_id: str, message_id: int) -> Context:
        """The Context that produced reply `message_id`; NotFound if none was stored."""
        with self._read() as db:
            own(db, user_id, session_id)
            row = db.scalar(
                select(ContextRecord)
                .where(
                    ContextRecord.session_id == session_id, ContextRecord.message_id == message_id
                )
                .order_by(ContextRecord.created_at.desc())
                .limit(1)
            )
            if row is None:
                raise NotFound("context", message_id)
            return Context.model_validate(row.data)

    def get_context_by_id(self, user_id: str, session_id: str, context_id: str) -> Context:
        with self._read() as db:
            own(db, user_id, session_id)
            row = db.get(ContextRecord, context_id)
            if row is None or row.session_id != session_id:
                raise NotFound("context", context_id)
            return Context.model_validate(row.data)
