"""`MemoryAdmin`: the multi-step operations on a session and what it remembers, which the
session and memory routes call once each. Create, read (with her greeting), change the title
or the memory strategy (a session that turns to recall gets its past indexed in the
background), delete, export and import a session; read its memory, edit the summary and the
user's pinned facts, forget one turn, reset it all.

It owns the reaching into `SessionMemory` (its recaller, its background tasks, the gists of
the relationship) that the routes used to do, and it goes to the store only through
`AsyncStore`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.errors import InvalidFieldError, NotFoundError
from app.personas.catalog import PersonaCatalog, UserPersonas
from app.recall_guard import describe
from app.service.chat import ChatService
from app.service.store import AsyncStore
from app.session_memory import SessionMemory, session_info, split_budget, validate_memory
from app.store.records import MessageRecord, SessionRecord
from app.store.transfer import parse_export
from memory import registry, user_edits
from memory.lore.errors import LoreError
from memory.lore.model import LoreBook
from memory.recall import recallable
from memory.types import Context, MemoryState, PinnedFact, StoredMessage


def user_fact(text: str, fact_id: str | None = None) -> PinnedFact:
    """A fact the user pins (its id, when none is given, from its text)."""
    return PinnedFact(
        id=fact_id or "user:" + hashlib.sha1(text.encode()).hexdigest()[:10],
        text=text.strip(),
        source="user",
    )


@dataclass
class MemoryView:
    """What a session remembers beyond its transcript, as the memory page shows it."""

    session: SessionRecord
    state: MemoryState
    pinned: list[PinnedFact]  # the persona's, then the user's
    items: list[StoredMessage] = field(default_factory=list)  # recallable and indexed
    indexing: int = 0  # recallable turns not indexed yet, while a recalling session waits
    index_unavailable: str | None = None  # why the vector index could not be read


@dataclass
class SessionView:
    """A session and the greeting her relationship with the user calls for (None when her
    persona was deleted: the session stays readable, a turn in it says what to do)."""

    record: SessionRecord
    greeting: str | None = None


class MemoryAdmin:
    def __init__(
        self, store: AsyncStore, chat: ChatService, personas: PersonaCatalog, settings: Settings
    ) -> None:
        self.store, self.chat, self.personas, self.settings = store, chat, personas, settings

    @property
    def memory(self) -> SessionMemory:
        return self.chat.memory

    # -- sessions ----------------------------------------------------------------------------
    async def _with_greeting(self, record: SessionRecord, personas: UserPersonas) -> SessionView:
        try:
            persona = personas.get(record.persona_id)
        except NotFoundError:
            return SessionView(record)
        return SessionView(record, await self.memory.relationships.greeting(record, persona))

    async def create_session(
        self,
        user_id: str,
        personas: UserPersonas,
        persona_id: str,
        strategy: str | None,
        params: dict[str, Any],
        title: str | None,
    ) -> SessionView:
        persona = personas.get(persona_id)
        strategy = strategy or persona.memory.strategy
        if strategy == persona.memory.strategy:
            # the persona's tuned params are the defaults; what the client sets wins
            params = {**persona.memory.params, **params}
        params, budget = split_budget(validate_memory(strategy, params))
        record = await self.store.create_session(
            user_id,
            persona.id,
            strategy,
            params,
            title,
            max_sessions=self.settings.max_sessions_per_user,
            budget_tokens=budget,
        )
        # a new conversation begins: for the user the others have ended, so their gists are
        # brought up to date before her greeting and first reply read them
        await self.memory.relationships.refresh_gists(user_id, persona.id, exclude=record.id)
        return await self._with_greeting(record, personas)

    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        return await self.store.list_sessions(user_id, limit, offset)

    async def messages_page(
        self, user_id: str, session_id: str, limit: int, before: int | None = None
    ) -> tuple[list[MessageRecord], bool]:
        """The session's last `limit` messages (with id < `before`), oldest first, and whether
        older ones remain."""
        records = await self.store.list_messages(user_id, session_id, limit + 1, before)
        has_more = len(records) > limit
        return (records[-limit:] if has_more else records), has_more

    async def stored_context(self, user_id: str, session_id: str, message_id: int) -> Context:
        """The Context that produced the stored reply `message_id`."""
        return await self.store.get_context(user_id, session_id, message_id)

    async def get_session(
        self, user_id: str, session_id: str, personas: UserPersonas
    ) -> SessionView:
        return await self._with_greeting(
            await self.store.get_session(user_id, session_id), personas
        )

    async def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        title: str | None = None,
        clear_title: bool = False,
        strategy: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> SessionRecord:
        """Rename and/or change the memory: `strategy` None keeps it (and `params` update its
        params); `params` None with no strategy leaves the memory as it is."""
        current = await self.store.get_session(user_id, session_id)
        new_strategy = new_params = new_budget = None
        if strategy is not None or params is not None:
            new_strategy = strategy or current.strategy
            given = params or {}
            # same strategy: a partial update of its params (the budget among them); another
            # one: its own params only
            if new_strategy == current.strategy:
                given = {**current.memory_params(), **given}
            new_params, new_budget = split_budget(validate_memory(new_strategy, given))
        record = await self.store.update_session(
            user_id,
            session_id,
            title=title,
            strategy=new_strategy,
            params=new_params,
            budget_tokens=new_budget,
            clear_title=clear_title,
        )
        turned = new_strategy is not None and new_strategy != current.strategy
        if turned and registry.get(record.strategy).uses_recall:
            # a session that turns to recall needs its past in the index
            self._index_later(record)
        return record

    async def delete_session(self, user_id: str, session_id: str) -> None:
        record = await self.store.get_session(user_id, session_id)
        await self.store.delete_session(user_id, session_id)
        if self.memory.recaller is not None:
            await self.memory.recaller.forget(session_info(record))

    async def export_session(self, user_id: str, session_id: str) -> dict[str, Any]:
        return await self.store.export_session(user_id, session_id)

    async def import_session(
        self, user_id: str, personas: UserPersonas, body: dict[str, Any]
    ) -> SessionRecord:
        """A copy of an exported session, its lorebooks attached again; its turns are indexed
        in the background, whatever its strategy (the user's later sessions recall from it)."""
        parsed = parse_export(body)
        if parsed.session.persona not in personas:
            raise InvalidFieldError(
                f"persona {parsed.session.persona!r} is not known here; add it first "
                "(POST /v1/personas)",
                field="session.persona",
            )
        validate_memory(parsed.session.strategy, parsed.session.params)
        for i, book in enumerate(parsed.lorebooks):
            try:
                LoreBook.of(book.data)
            except LoreError as exc:
                where = f"lorebooks.{i}.data" + (f".{exc.field}" if exc.field else "")
                problem = str(exc).removeprefix(f"{exc.field}: ")
                raise InvalidFieldError(f"{where}: {problem}", field=where) from None
        for i, m in enumerate(parsed.messages):
            if m.content:  # an interrupted reply may be empty
                self.chat.check_content(m.content, field=f"messages.{i}.content")

        def recount() -> dict[str, Any]:
            # token counts belong to this server's model, not to the exporter's
            for m in parsed.messages:
                m.tokens = self.chat.count_message(m.role, m.content)
            return parsed.model_dump(mode="json")

        data = await asyncio.to_thread(recount)
        record = await self.store.import_session(
            user_id,
            data,
            max_messages=self.settings.max_history_import,
            max_sessions=self.settings.max_sessions_per_user,
        )
        self._index_later(record)
        return record

    def _index_later(self, record: SessionRecord) -> None:
        self.memory.background(self.memory.index_history(record), name=f"index-{record.id}")

    # -- memory ------------------------------------------------------------------------------
    async def view(self, user_id: str, session_id: str, limit: int = 200) -> MemoryView:
        """The summary, pinned facts and the newest `limit` turns vector memory can recall."""
        session = await self.store.get_session(user_id, session_id)
        state, _ = await self.store.get_memory(user_id, session_id)
        persona = self.personas.session_persona(session)
        view = MemoryView(session, state, persona.pinned() + state.pinned)
        index = getattr(self.memory.recaller, "index", None)
        if index is None:
            return view
        try:
            indexed = await index.ids(session_info(session))
        except Exception as exc:  # noqa: BLE001 - the vector server is down: say so, show the rest
            view.index_unavailable = f"the vector index is unavailable ({describe(exc)})"
            indexed = set()
        # an import or a strategy change indexes in the background: the page waits for a
        # recalling session's turns, unless nothing is being indexed (the index is down)
        waits = registry.get(session.strategy).uses_recall and not view.index_unavailable
        if indexed or waits:
            history = await self.store.history(user_id, session_id)
            forgotten = set(state.forgotten)
            kept = [m for m in history if m.id not in forgotten and recallable(m)]
            view.items = [m for m in kept if m.id in indexed][-limit:]
            view.indexing = sum(m.id not in indexed for m in kept) if waits else 0
        return view

    async def _edit(
        self, user_id: str, session_id: str, change: Callable[[MemoryState], MemoryState]
    ) -> MemoryView:
        await self.store.update_memory(user_id, session_id, change)
        return await self.view(user_id, session_id)

    async def edit(
        self,
        user_id: str,
        session_id: str,
        summary: str | None = None,
        pinned: list[PinnedFact] | None = None,
    ) -> MemoryView:
        """Replace the summary and/or the user's pinned facts; what is replaced is kept."""

        def change(state: MemoryState) -> MemoryState:
            if summary is not None:
                # an edited summary is the user's word: keep what it covers, reset failures
                state = user_edits.edit_summary(state, summary)
            if pinned is not None:
                state = user_edits.replace_pinned(state, pinned)
            return state

        return await self._edit(user_id, session_id, change)

    async def restore_summary(self, user_id: str, session_id: str, version: int) -> MemoryView:
        return await self._edit(
            user_id, session_id, lambda state: user_edits.restore_summary(state, version)
        )

    async def restore_pinned(self, user_id: str, session_id: str, fact_id: str) -> MemoryView:
        return await self._edit(
            user_id, session_id, lambda state: user_edits.restore_pinned(state, fact_id)
        )

    async def unpin(self, user_id: str, session_id: str, fact_id: str) -> None:
        state, _ = await self.store.get_memory(user_id, session_id)
        if not any(p.id == fact_id for p in state.pinned):
            raise NotFoundError(
                f"no user-pinned fact {fact_id!r} in session {session_id} (persona facts are "
                "fixed by the persona file)",
                field="fact_id",
            )

        def change(state: MemoryState) -> MemoryState:
            return user_edits.replace_pinned(state, [p for p in state.pinned if p.id != fact_id])

        await self.store.update_memory(user_id, session_id, change)

    async def dismiss_notice(self, user_id: str, session_id: str) -> None:
        await self.store.update_memory(
            user_id, session_id, lambda state: state.model_copy(update={"notice": None})
        )

    async def forget_item(self, user_id: str, session_id: str, message_id: int) -> None:
        """Forget a stored turn, in the session it belongs to (a recalled turn of another of
        the user's sessions too): out of the index, never recalled, its summary and gist
        rebuilt without it."""
        await self.store.get_session(user_id, session_id)  # 404 if not the user's
        owner = await self.store.message_session(user_id, message_id)

        def change(state: MemoryState) -> MemoryState:
            if message_id not in state.forgotten:
                state = state.model_copy(update={"forgotten": [*state.forgotten, message_id]})
            return user_edits.after_forget(state, [message_id])

        await self.store.update_memory(user_id, owner.id, change)
        await self.memory.forgot(owner)
        # a summary dropped for covering it is rebuilt now, in the background, not at the next
        # turn
        self.memory.upkeep_later(owner)
        if self.memory.recaller is not None:
            await self.memory.recaller.forget(session_info(owner), [message_id])

    async def reset(self, user_id: str, session_id: str) -> None:
        """Forget everything the session remembers beyond its transcript."""
        session = await self.store.get_session(user_id, session_id)
        history = await self.store.history(user_id, session_id)

        def change(state: MemoryState) -> MemoryState:
            return MemoryState(forgotten=sorted({*state.forgotten, *(m.id for m in history)}))

        await self.store.update_memory(user_id, session_id, change)
        await self.memory.forgot(session)
        if self.memory.recaller is not None:
            await self.memory.recaller.forget(session_info(session))
