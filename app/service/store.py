"""`AsyncStore`: the sync `Store` seen from async code. Each method runs the `Store` method of
the same name and signature in a worker thread (`asyncio.to_thread`), so callers `await` it
and the event loop never waits on the database.

An explicit list, not a `__getattr__`: mypy checks every call. A method a caller needs and
that is missing here is added here, with the `Store` signature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from app.store.locks import TurnLock
from app.store.lore import LoreBookRecord
from app.store.records import (
    MessageRecord,
    MessageStatus,
    NewMessage,
    SessionRecord,
    UserRecord,
)
from app.store.relationships import RelationshipRecord, ScopeHistory
from app.store.repo import LOCAL_USER, Store
from memory.relationship import RelationshipState
from memory.types import Context, MemoryScope, MemoryState, StoredMessage


class AsyncStore:
    """Awaitable versions of the `Store` methods the service and the routes use."""

    def __init__(self, store: Store) -> None:
        self.sync = store  # for the code that already runs in a thread

    # -- users and startup --------------------------------------------------------------------
    async def get_or_create_user(self, name: str = LOCAL_USER) -> UserRecord:
        return await asyncio.to_thread(self.sync.get_or_create_user, name)

    async def renew_leases(self) -> int:
        return await asyncio.to_thread(self.sync.renew_leases)

    async def recover_pending(self, now: datetime | None = None, *, alone: bool = False) -> int:
        return await asyncio.to_thread(lambda: self.sync.recover_pending(now, alone=alone))

    # -- sessions ----------------------------------------------------------------------------
    async def create_session(
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
        return await asyncio.to_thread(
            self.sync.create_session,
            user_id,
            persona_id,
            strategy,
            params,
            title,
            memory,
            max_sessions,
            budget_tokens,
        )

    async def get_session(self, user_id: str, session_id: str) -> SessionRecord:
        return await asyncio.to_thread(self.sync.get_session, user_id, session_id)

    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        return await asyncio.to_thread(self.sync.list_sessions, user_id, limit, offset)

    async def update_session(
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
        return await asyncio.to_thread(
            lambda: self.sync.update_session(
                user_id,
                session_id,
                title=title,
                strategy=strategy,
                params=params,
                budget_tokens=budget_tokens,
                persona_id=persona_id,
                clear_title=clear_title,
            )
        )

    async def delete_session(self, user_id: str, session_id: str) -> None:
        await asyncio.to_thread(self.sync.delete_session, user_id, session_id)

    async def export_session(self, user_id: str, session_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.export_session, user_id, session_id)

    async def import_session(
        self,
        user_id: str,
        data: Any,
        max_messages: int | None = None,
        max_sessions: int | None = None,
    ) -> SessionRecord:
        return await asyncio.to_thread(
            self.sync.import_session, user_id, data, max_messages, max_sessions
        )

    # -- messages, memory, contexts ----------------------------------------------------------
    async def list_messages(
        self, user_id: str, session_id: str, limit: int = 50, before: int | None = None
    ) -> list[MessageRecord]:
        return await asyncio.to_thread(self.sync.list_messages, user_id, session_id, limit, before)

    async def add_messages(
        self,
        user_id: str,
        session_id: str,
        messages: Sequence[NewMessage],
        context_id: str | None = None,
    ) -> list[MessageRecord]:
        return await asyncio.to_thread(
            self.sync.add_messages, user_id, session_id, messages, context_id
        )

    async def update_message(
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
        return await asyncio.to_thread(
            lambda: self.sync.update_message(
                user_id,
                session_id,
                message_id,
                content=content,
                tokens=tokens,
                status=status,
                context_id=context_id,
                usage=usage,
            )
        )

    async def history(self, user_id: str, session_id: str) -> list[StoredMessage]:
        return await asyncio.to_thread(self.sync.history, user_id, session_id)

    async def get_memory(self, user_id: str, session_id: str) -> tuple[MemoryState, int]:
        return await asyncio.to_thread(self.sync.get_memory, user_id, session_id)

    async def save_memory(
        self,
        user_id: str,
        session_id: str,
        state: MemoryState,
        expected_version: int | None = None,
    ) -> int:
        return await asyncio.to_thread(
            self.sync.save_memory, user_id, session_id, state, expected_version
        )

    async def update_memory(
        self,
        user_id: str,
        session_id: str,
        change: Callable[[MemoryState], MemoryState | None],
    ) -> MemoryState:
        return await asyncio.to_thread(self.sync.update_memory, user_id, session_id, change)

    async def get_context(self, user_id: str, session_id: str, message_id: int) -> Context:
        return await asyncio.to_thread(self.sync.get_context, user_id, session_id, message_id)

    async def save_context(
        self, user_id: str, session_id: str, context: Context, message_id: int | None = None
    ) -> Context:
        return await asyncio.to_thread(
            self.sync.save_context, user_id, session_id, context, message_id
        )

    # -- turn locks --------------------------------------------------------------------------
    async def acquire_turn_lock(self, session_id: str, wait_seconds: float) -> TurnLock | None:
        return await asyncio.to_thread(self.sync.acquire_turn_lock, session_id, wait_seconds)

    # -- relationships and scopes ------------------------------------------------------------
    async def get_relationship(self, user_id: str, persona_id: str) -> RelationshipState:
        return await asyncio.to_thread(self.sync.get_relationship, user_id, persona_id)

    async def list_relationships(self, user_id: str) -> list[RelationshipRecord]:
        return await asyncio.to_thread(self.sync.list_relationships, user_id)

    async def update_relationship(
        self,
        user_id: str,
        persona_id: str,
        change: Callable[[RelationshipState], RelationshipState | None],
    ) -> RelationshipState:
        return await asyncio.to_thread(self.sync.update_relationship, user_id, persona_id, change)

    async def scope_sessions(
        self, user_id: str, persona_id: str, scope: MemoryScope, exclude: str | None = None
    ) -> list[tuple[SessionRecord, set[int]]]:
        return await asyncio.to_thread(
            self.sync.scope_sessions, user_id, persona_id, scope, exclude
        )

    async def scope_histories(
        self,
        user_id: str,
        persona_id: str,
        scope: MemoryScope,
        exclude: str | None = None,
        after_id: int = 0,
    ) -> list[ScopeHistory]:
        return await asyncio.to_thread(
            self.sync.scope_histories, user_id, persona_id, scope, exclude, after_id
        )

    async def message_session(self, user_id: str, message_id: int) -> SessionRecord:
        return await asyncio.to_thread(self.sync.message_session, user_id, message_id)

    async def max_message_id(self) -> int:
        return await asyncio.to_thread(self.sync.max_message_id)

    # -- lorebooks ---------------------------------------------------------------------------
    async def create_book(self, user_id: str, data: dict[str, Any]) -> LoreBookRecord:
        return await asyncio.to_thread(self.sync.create_book, user_id, data)

    async def list_books(self, user_id: str) -> list[LoreBookRecord]:
        return await asyncio.to_thread(self.sync.list_books, user_id)

    async def get_book(self, user_id: str, book_id: str) -> LoreBookRecord:
        return await asyncio.to_thread(self.sync.get_book, user_id, book_id)

    async def update_book(
        self,
        user_id: str,
        book_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> LoreBookRecord:
        return await asyncio.to_thread(self.sync.update_book, user_id, book_id, change)

    async def delete_book(self, user_id: str, book_id: str) -> None:
        await asyncio.to_thread(self.sync.delete_book, user_id, book_id)

    async def attach_book(self, user_id: str, session_id: str, book_id: str) -> None:
        await asyncio.to_thread(self.sync.attach_book, user_id, session_id, book_id)

    async def detach_book(self, user_id: str, session_id: str, book_id: str) -> None:
        await asyncio.to_thread(self.sync.detach_book, user_id, session_id, book_id)

    async def session_books(self, user_id: str, session_id: str) -> list[LoreBookRecord]:
        return await asyncio.to_thread(self.sync.session_books, user_id, session_id)
