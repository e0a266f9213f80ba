"""ChatService: one turn = load session + persona, assemble the Context with the session's
memory strategy, commit the user's message, stream the reply, commit it, then let memory observe
the turn in the background.

Turns of one session are serialized by a per-session lock held from assembling to committing
the reply, so two concurrent posts give two complete, ordered turns: an in-process lock, plus the
store's turn lock so that API replicas sharing one database serialize too (app/service/turns.py
TurnGuard). The reply is generated in its own task (app/service/turns.py): a client that leaves
cancels it, and the task stores what was produced as `interrupted`. While it streams, the text
so far is checkpointed onto the pending row every MEMENTO_REPLY_CHECKPOINT_SECONDS, so that even
a kill -9 keeps most of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from app.config import Settings
from app.errors import InvalidFieldError, ServiceStarting, TooLargeError
from app.llm.stops import ReplyCut, label_stops
from app.llm.types import Engine, FinishReason, GenerationParams, Usage
from app.personas.catalog import PersonaCatalog
from app.personas.model import Persona
from app.service.generation import EngineReply, context_speakers, role_stops
from app.service.reply_store import write_when_possible
from app.service.store import AsyncStore
from app.service.turns import (
    PENALTY_REPLIES,
    ReplyCheckpoints,
    SessionLocks,
    Turn,
    TurnGuard,
    TurnOptions,
    TurnResult,
    recent_replies,
    with_memory,
)
from app.session_memory import SessionMemory
from app.store.faults import store_fault
from app.store.records import MessageRecord, MessageStatus, NewMessage, Role, SessionRecord
from app.store.repo import Store
from app.warmup import NextTurnWarmer
from memory.types import Context

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DraftOutcome:
    warming: bool
    reason: str | None = None  # why not, when it is not
    max_tokens: int | None = None  # the reply room the warmed Context keeps


def usage_dict(u: Usage) -> dict[str, int]:
    """A reply's token usage as stored with it (messages.usage)."""
    return {
        "prompt_tokens": u.prompt_tokens,
        "cached_tokens": u.cached_tokens,
        "completion_tokens": u.completion_tokens,
    }


class ChatService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: Store,
        personas: PersonaCatalog,
        recaller: Any = None,
    ) -> None:
        self.settings, self.engine, self.store, self.personas = settings, engine, store, personas
        self.astore = AsyncStore(store)  # the store, awaitable: what the turn's steps call
        self.memory = SessionMemory(settings, engine, store, recaller)
        self.warmer = NextTurnWarmer(engine, self.memory, store, personas)
        if settings.warm_next_turn:
            self.memory.on_upkept = self.warmer.rewarm
        self.locks = SessionLocks()
        self._turns: set[Turn] = set()
        self._closing = False

    # -- checks ------------------------------------------------------------------------------
    def check_length(self, content: str, field: str = "content") -> None:
        limit = self.settings.max_message_chars
        if len(content) > limit:
            raise TooLargeError(
                f"{field} has {len(content)} characters; the limit is {limit} "
                "(MEMENTO_MAX_MESSAGE_CHARS)",
                field=field,
            )

    def check_content(self, content: str, field: str = "content") -> None:
        self.check_length(content, field)
        if not content.strip():
            raise InvalidFieldError(f"{field} must not be empty", field=field)

    def check_max_tokens(self, max_tokens: int | None, field: str = "max_tokens") -> None:
        limit = self.settings.max_tokens_limit
        if max_tokens is not None and max_tokens > limit:
            raise InvalidFieldError(
                f"{field} {max_tokens} is over the limit of {limit} (MEMENTO_MAX_TOKENS_LIMIT)",
                field=field,
            )

    def generation_params(self, persona: Persona, options: TurnOptions) -> GenerationParams:
        """The caller's options over the persona's defaults; a persona default above the
        server's max_tokens limit is capped (only an explicit request over it is an error)."""
        params = options.params(persona.generation.model_dump(), self.settings.default_max_tokens)
        if params.max_tokens > self.settings.max_tokens_limit:
            params = dataclasses.replace(params, max_tokens=self.settings.max_tokens_limit)
        stops = tuple(dict.fromkeys((*params.stop, *role_stops(persona))))
        return dataclasses.replace(params, stop=stops)

    def count_message(self, role: str, content: str) -> int:
        return self.engine.count_message({"role": role, "content": content})

    # -- a turn ------------------------------------------------------------------------------
    async def start_turn(
        self, user_id: str, session_id: str, content: str, options: TurnOptions
    ) -> Turn:
        """Everything up to the first token: errors here (404, 409, 413, 422) happen before
        any response starts. The returned Turn is generating in its own task."""
        if self._closing:
            raise ServiceStarting("the service is shutting down")
        self.check_content(content)
        self.check_max_tokens(options.max_tokens)
        self.engine.check_capacity()  # 429 before anything is stored
        # 404 at once, not after waiting for the lock
        await self.astore.get_session(user_id, session_id)
        guard = await self._guard(session_id)
        self.warmer.cancel(session_id)
        try:
            # re-read under the lock: the previous turn or a PATCH may have changed it
            session = await self.astore.get_session(user_id, session_id)
            persona = self.personas.session_persona(session)
            params = self.generation_params(persona, options)
            history = await self.astore.history(user_id, session_id)
            said = recent_replies([(m.role, m.content) for m in history[-2 * PENALTY_REPLIES :]])
            params = dataclasses.replace(params, penalty_context=said)
            context = await self.memory.assemble(
                session, persona, history, content, params.max_tokens
            )
            shown = context.to_messages()
            speakers = context_speakers(persona, shown)
            params = dataclasses.replace(
                with_memory(params, shown),
                stop=tuple(dict.fromkeys((*params.stop, *label_stops(speakers)))),
            )
            tokens = await asyncio.to_thread(self.count_message, "user", content)
            message, reply = await self.astore.add_messages(
                user_id,
                session_id,
                [
                    NewMessage(role="user", content=content, tokens=tokens),
                    NewMessage(role="assistant", content="", status="pending"),
                ],
            )
            context = await self.astore.save_context(user_id, session_id, context, reply.id)
            turn = Turn(
                session_id=session_id,
                message=message,
                reply=reply,
                context=context,
                params=params,
                speakers=speakers,
            )
            turn.start(self._generate(turn, session, guard))
        except BaseException:
            # shielded: a second cancellation must not leave the store lock held
            await asyncio.shield(guard.release())
            raise
        self._turns.add(turn)
        assert turn.task is not None
        turn.task.add_done_callback(lambda _: self._settle(turn, session, guard))
        return turn

    async def draft(
        self, user_id: str, session_id: str, content: str, max_tokens: int | None
    ) -> DraftOutcome:
        """The user is typing `content` in the session: prefill its next prompt as far as the
        draft tells (app/warmup.py). Nothing is stored; an empty draft warms the head only."""
        self.check_length(content)
        self.check_max_tokens(max_tokens)
        session = await self.astore.get_session(user_id, session_id)  # 404
        if not self.settings.warm_next_turn:
            return DraftOutcome(False, "warming is off (MEMENTO_WARM_NEXT_TURN)")
        if self.locks.get(session_id).locked():
            return DraftOutcome(False, "a reply of the session is being generated")
        if max_tokens is None:
            max_tokens = self._next_max_tokens(session)
        used = self.warmer.draft(session, content if content.strip() else "", max_tokens)
        return DraftOutcome(True, None, used)

    def _next_max_tokens(self, session: SessionRecord) -> int:
        """The next turn's max_tokens as far as known: its last turn's, or (no turn since this
        process knew the session) the persona's defaults."""
        known = self.warmer.idle_max_tokens(session.id)
        if known is not None:
            return known
        persona = self.personas.session_persona(session)
        return self.generation_params(persona, TurnOptions()).max_tokens

    async def _guard(self, session_id: str) -> TurnGuard:
        return await TurnGuard.acquire(
            self.locks, self.astore, session_id, self.settings.session_wait_seconds
        )

    def _settle(self, turn: Turn, session: SessionRecord, guard: TurnGuard) -> None:
        """A turn cancelled before its first step never ran its own bookkeeping: do it here."""
        self._turns.discard(turn)
        if turn.settled:
            return
        turn.end()

        async def interrupted() -> None:
            try:
                await self.astore.update_message(
                    session.user_id,
                    session.id,
                    turn.reply.id,
                    status="interrupted",
                )
            finally:
                await guard.release()

        self.memory.background(interrupted(), name=f"interrupt-{session.id}")

    def _checkpoint(self, session: SessionRecord, reply_id: int, text: str) -> None:
        """Worker thread: the reply so far onto its pending row, with its token count."""
        tokens = self.count_message("assistant", text)
        self.store.save_partial_reply(session.user_id, session.id, reply_id, text, tokens)

    async def _generate(self, turn: Turn, session: SessionRecord, guard: TurnGuard) -> TurnResult:
        error: str | None = None
        # cut at the stops and the transcript's speaker labels (app/service/generation.py)
        engine_reply = EngineReply(
            self.engine,
            turn.context.to_messages(),
            turn.params,
            session.cache_key,
            ReplyCut(turn.params.stop, turn.speakers),
        )
        parts = engine_reply.parts
        checkpoints = ReplyCheckpoints(
            parts,
            lambda text: self._checkpoint(session, turn.reply.id, text),
            self.settings.reply_checkpoint_seconds,
        )
        cancelled = False
        try:
            async for text, _ in engine_reply.pieces():
                turn.push(text)
                checkpoints.changed()
        except asyncio.CancelledError:
            cancelled = True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # we handle it: store the partial reply below
        except Exception as exc:  # noqa: BLE001 - stored on the reply, reported to the client
            log.exception("generation failed in session %s", session.id)
            error = str(exc) or type(exc).__name__
        finally:
            turn.end()
        finish: FinishReason | None = "cancelled" if cancelled else engine_reply.finish
        usage = engine_reply.usage
        status: MessageStatus = (
            "error" if error else ("interrupted" if finish == "cancelled" else "complete")
        )
        text = "".join(parts)

        async def final_write() -> MessageRecord:
            tokens = await asyncio.to_thread(self.count_message, "assistant", text)
            return await self.astore.update_message(
                session.user_id,
                session.id,
                turn.reply.id,
                content=text,
                tokens=tokens,
                status=status,
                # as the engine counted it (none for a reply cut before its last chunk)
                usage=None if usage is None else usage_dict(usage),
            )

        try:
            await checkpoints.close()
            reply = await final_write()
        except Exception as exc:
            if store_fault(exc) is not None:
                # disk full or database away: the client hears why; the reply is written
                # when the database takes it again, then memory observes the turn
                self.memory.background(
                    write_when_possible(
                        final_write,
                        f"reply {turn.reply.id} of session {session.id}",
                        then=lambda stored: self._observe(session, turn, stored),
                    ),
                    name=f"store-reply-{session.id}",
                )
            raise
        finally:
            turn.settled = True
            # shielded: the next turn (here or on another replica) waits for this release
            await asyncio.shield(guard.release())
        if usage is None:
            usage = Usage(completion_tokens=len(parts))
        observing = self._observe(session, turn, reply)
        if status == "complete" and self.settings.warm_next_turn:
            self.warmer.schedule(observing, session, turn.params.max_tokens)
        if status != "complete":
            log.info("reply %d of session %s stored as %s", reply.id, session.id, status)
        return TurnResult(
            message=turn.message,
            reply=reply,
            usage=usage,
            context_id=turn.context.id,
            finish_reason=finish,
            error=error,
        )

    def _observe(
        self, session: SessionRecord, turn: Turn, reply: MessageRecord
    ) -> asyncio.Task[None]:
        observed = [turn.message.to_stored()]
        if reply.status == "complete":  # memory sees finished turns only, like store.history()
            observed.append(reply.to_stored())
        return self.memory.observe_later(session, observed, turn.context)

    async def run_turn(
        self, user_id: str, session_id: str, content: str, options: TurnOptions
    ) -> TurnResult:
        turn = await self.start_turn(user_id, session_id, content, options)
        try:
            return await turn.result()
        except asyncio.CancelledError:
            turn.cancel()
            raise

    async def dry_run(
        self, user_id: str, session_id: str, content: str, max_tokens: int | None = None
    ) -> Context:
        """The Context `content` would get now; nothing generated or stored."""
        self.check_content(content)
        self.check_max_tokens(max_tokens)
        session = await self.astore.get_session(user_id, session_id)
        persona = self.personas.session_persona(session)
        params = self.generation_params(persona, TurnOptions(max_tokens=max_tokens))
        history = await self.astore.history(user_id, session_id)
        return await self.memory.assemble(session, persona, history, content, params.max_tokens)

    # -- history import ------------------------------------------------------------------------
    async def import_history(
        self, user_id: str, session_id: str, messages: Sequence[tuple[Role, str, Any]]
    ) -> list[MessageRecord]:
        """Store past turns (role, content, created_at) without generating; memory observes
        them in the background as if they had happened."""
        limit = self.settings.max_history_import
        if len(messages) > limit:
            raise TooLargeError(
                f"{len(messages)} messages to import; the limit is {limit} "
                "(MEMENTO_MAX_HISTORY_IMPORT)",
                field="messages",
            )
        for i, (_, content, _) in enumerate(messages):
            self.check_content(content, field=f"messages.{i}.content")

        def counted() -> list[NewMessage]:
            return [
                NewMessage(role=r, content=c, tokens=self.count_message(r, c), created_at=at)
                for r, c, at in messages
            ]

        new = await asyncio.to_thread(counted)
        guard = await self._guard(session_id)
        try:
            session = await self.astore.get_session(user_id, session_id)
            records = await self.astore.add_messages(user_id, session_id, new)
        finally:
            await asyncio.shield(guard.release())
        observing = self.memory.observe_later(session, [r.to_stored() for r in records])
        if self.settings.warm_next_turn:
            # the first question about what was imported should not prefill it all (issue 13)
            self.warmer.schedule(observing, session, self._next_max_tokens(session))
        return records

    # -- lifecycle -------------------------------------------------------------------------------
    async def aclose(self, timeout: float = 30.0) -> None:
        """Interrupt replies in flight (each stores what it produced), then let memory finish."""
        self._closing = True
        turns = [t for t in self._turns if t.task is not None]
        for turn in turns:
            turn.cancel()
        if turns:
            await asyncio.wait([t.task for t in turns if t.task is not None], timeout=timeout)
        await self.memory.aclose()
