"""Prefill while the user types (issue 13): after a reply and its memory upkeep, or an import
of past turns and its upkeep, the start of the session's next prompt goes into its KV cache in
the engine's background lane.

The next prompt is not known until the user writes, but most of it is: the persona, pinned
facts, relationship, kept recalled turns, summary and recent buffer are what the Context of an
empty message holds. Left to prefill when the message comes are what its recall adds and the
message itself, unless the client tells what is being typed (a draft, PUT .../draft): then the
warm-up assembles the Context of the draft, its recall and the draft as the user's message
included, so a message sent as drafted prefills only the reply's opening, and one that differs
prefills from where it differs. A turn of the session cancels its warm-up; foreground streams
of other sessions run before each of its steps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from app.llm.types import Engine
from app.personas.catalog import PersonaCatalog
from app.session_memory import SessionMemory
from app.store.records import SessionRecord
from app.store.repo import Store

log = logging.getLogger(__name__)


@dataclass
class Idle:
    """A session between a finished reply and its next turn."""

    max_tokens: int  # the Context reserves the reply's room: the next turn's, as far as known
    observing: asyncio.Future[None] | None = None  # the last turn's memory upkeep
    draft: str = ""  # what the user is typing, as the client last told


class NextTurnWarmer:
    def __init__(
        self, engine: Engine, memory: SessionMemory, store: Store, personas: PersonaCatalog
    ) -> None:
        self.engine, self.memory, self.store, self.personas = engine, memory, store, personas
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._idle: dict[str, Idle] = {}

    def schedule(
        self, observing: asyncio.Future[None] | None, session: SessionRecord, max_tokens: int
    ) -> None:
        """Warm the session's cache once `observing` (the turn's observation) is done (None:
        now)."""
        self._idle[session.id] = Idle(max_tokens, observing)
        self._start(session)

    def draft(self, session: SessionRecord, text: str, max_tokens: int | None) -> int:
        """The user is typing `text`: warm the next prompt as that message would assemble it.
        `max_tokens` is the coming turn's when the client knows it, else the last turn's; a
        session with no turn since the warmer knew it needs one. Returns the max_tokens used."""
        idle = self._idle.get(session.id)
        if idle is None:
            assert max_tokens is not None, "a session's first draft needs its max_tokens"
            idle = self._idle[session.id] = Idle(max_tokens)
        elif idle.draft == text and max_tokens in (None, idle.max_tokens):
            return idle.max_tokens  # told again (a page re-sends after a pause): warmed already
        elif max_tokens is not None:
            idle.max_tokens = max_tokens
        idle.draft = text
        self._start(session)
        return idle.max_tokens

    def idle_max_tokens(self, session_id: str) -> int | None:
        idle = self._idle.get(session_id)
        return None if idle is None else idle.max_tokens

    def rewarm(self, session: SessionRecord) -> None:
        """The session's memory changed after its warm-up (a summary upkeep wrote): warm the
        changed end of its next prompt too, unless a turn has started meanwhile."""
        if session.id in self._idle:
            self._start(session)

    def draft_of(self, session_id: str) -> str | None:
        """What the client last told the session's user is typing (None: no turn or draft
        since this process knew it)."""
        idle = self._idle.get(session_id)
        return None if idle is None else idle.draft

    def warming(self, session_id: str) -> bool:
        """Is a warm-up of the session scheduled or running?"""
        return session_id in self._tasks

    def cancel(self, session_id: str) -> None:
        """A turn of the session starts: its own prompt is what counts now."""
        self._idle.pop(session_id, None)
        self._stop(session_id)

    def _stop(self, session_id: str) -> None:
        task = self._tasks.pop(session_id, None)
        if task is not None:
            task.cancel()

    def _start(self, session: SessionRecord) -> None:
        """(Re)start the session's warm-up from what its Idle says now; a running one is
        superseded (a newer draft, a rewritten summary)."""
        self._stop(session.id)
        idle = self._idle[session.id]
        task = self.memory.background(self._warm(idle, session), name=f"warm-{session.id}")
        self._tasks[session.id] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(session.id) is t:  # not a newer warm-up of the session
                del self._tasks[session.id]

        task.add_done_callback(done)

    async def _warm(self, idle: Idle, session: SessionRecord) -> None:
        if idle.observing is not None:
            await asyncio.wait([idle.observing])
        try:
            store = self.memory.astore  # the store, awaitable (app/service/store.py)
            session = await store.get_session(session.user_id, session.id)
            persona = self.personas.get(session.persona_id, session.user_id)
            history = await store.history(session.user_id, session.id)
            context = await self.memory.assemble(
                session, persona, history, idle.draft, idle.max_tokens
            )
            # without a draft the Context of an empty message stands in: its empty "new" part
            # is not the message's and is left out
            parts = context.parts if idle.draft else [p for p in context.parts if p.kind != "new"]
            head = [m for p in parts for m in p.to_messages()]
            n = await self.engine.warm(head, cache_key=session.cache_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an optimization: the next turn prefills all
            log.info("warming the cache of session %s failed: %s", session.id, exc)
            return
        log.debug("warmed session %s: %d tokens prefilled", session.id, n)
