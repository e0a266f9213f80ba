"""Prefill while the user types (issue 13): after a reply and its memory upkeep, the start of
the session's next prompt goes into its KV cache in the engine's background lane.

The next prompt is not known until the user writes, but most of it is: the persona, pinned
facts, relationship, kept recalled turns, summary and recent buffer are what the Context of an
empty message holds. Only what the next message's recall adds and the message itself are left
to prefill when it comes. A turn of the session cancels its warm-up; foreground streams of
other sessions run before each of its steps.
"""

from __future__ import annotations

import asyncio
import logging

from app.llm.types import Engine
from app.persona_catalog import PersonaCatalog
from app.session_memory import SessionMemory
from app.store.records import SessionRecord
from app.store.repo import Store
from memory.types import PartKind

log = logging.getLogger(__name__)

# What the next message brings: not known while the user types
NEXT_MESSAGE_KINDS: tuple[PartKind, ...] = ("recalled", "new")


class NextTurnWarmer:
    def __init__(
        self, engine: Engine, memory: SessionMemory, store: Store, personas: PersonaCatalog
    ) -> None:
        self.engine, self.memory, self.store, self.personas = engine, memory, store, personas
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # sessions between a finished reply and their next turn: max_tokens of that reply
        self._idle: dict[str, int] = {}

    def schedule(
        self, observing: asyncio.Future[None] | None, session: SessionRecord, max_tokens: int
    ) -> None:
        """Warm the session's cache once `observing` (the turn's observation) is done (None:
        now)."""
        self.cancel(session.id)
        self._idle[session.id] = max_tokens
        task = self.memory.background(
            self._warm(observing, session, max_tokens), name=f"warm-{session.id}"
        )
        self._tasks[session.id] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(session.id) is t:  # not a newer warm-up of the session
                del self._tasks[session.id]

        task.add_done_callback(done)

    def rewarm(self, session: SessionRecord) -> None:
        """The session's memory changed after its warm-up (a summary upkeep wrote): warm the
        changed end of its next prompt too, unless a turn has started meanwhile."""
        max_tokens = self._idle.get(session.id)
        if max_tokens is not None:
            self.schedule(None, session, max_tokens)

    def warming(self, session_id: str) -> bool:
        """Is a warm-up of the session scheduled or running?"""
        return session_id in self._tasks

    def cancel(self, session_id: str) -> None:
        """A turn of the session starts: its own prompt is what counts now."""
        self._idle.pop(session_id, None)
        task = self._tasks.pop(session_id, None)
        if task is not None:
            task.cancel()

    async def _warm(
        self, observing: asyncio.Future[None] | None, session: SessionRecord, max_tokens: int
    ) -> None:
        if observing is not None:
            await asyncio.wait([observing])
        try:
            store = self.memory.astore  # the store, awaitable (app/service/store.py)
            session = await store.get_session(session.user_id, session.id)
            persona = self.personas.get(session.persona_id, session.user_id)
            history = await store.history(session.user_id, session.id)
            context = await self.memory.assemble(session, persona, history, "", max_tokens)
            parts = [p for p in context.parts if p.kind not in NEXT_MESSAGE_KINDS]
            head = [m for p in parts for m in p.to_messages()]
            n = await self.engine.warm(head, cache_key=session.cache_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an optimization: the next turn prefills all
            log.info("warming the cache of session %s failed: %s", session.id, exc)
            return
        log.debug("warmed session %s: %d tokens prefilled", session.id, n)
