"""A session's memory, as the service drives it: build its strategy, assemble a Context, and
observe turns in the background after the reply went out.

Observation is never on a reply's critical path. Observers of one session run one at a time in
turn order; a failed observation is logged and its messages are handed to the next one, so
memory catches up instead of silently losing a turn. The slow part of an observation (model
calls: the summary) runs in a lane of its own, one pass at a time per session: the bookkeeping
the next prompt is built from (the recent buffer's cut, kept recalled turns) is saved right
after the reply instead of after seconds of summarizing, and a turn never waits behind an
import's backlog.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from app.config import Settings
from app.errors import InvalidFieldError
from app.llm.types import Engine
from app.lore import active_books
from app.personas.model import Persona
from app.recall_guard import recall_unavailable
from app.relationships import Relationships
from app.service.store import AsyncStore
from app.store.errors import Conflict, NotFound
from app.store.records import SessionRecord
from app.store.repo import Store
from memory import registry
from memory.base import MemoryDeps, MemoryStrategy, without_forgotten
from memory.relationship import MAX_RELATIONSHIP_TOKENS
from memory.strategies._lore import DEFAULT_LORE_TOKENS, MAX_LORE_TOKENS
from memory.types import (
    SCOPES,
    SUMMARY_FIELDS,
    AssembleRequest,
    Context,
    MemoryState,
    MemoryStrategyError,
    SessionInfo,
    StoredMessage,
)
from memory.user_edits import after_summarizer

log = logging.getLogger(__name__)

# The fields of the API's `memory` object that belong to the service, not to the strategy
# (GET /v1/strategies lists them as service_params). budget_tokens is stored in a column of
# the session (SessionRecord.budget_tokens); the others stay with the strategy's params.
SERVICE_PARAMS = ("scope", "relationship_tokens", "budget_tokens", "lore_tokens")
MIN_BUDGET = 32


def strategy_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in SERVICE_PARAMS}


def split_budget(params: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Validated memory params (validate_memory) -> (the params to store, budget_tokens)."""
    budget = params.get("budget_tokens")
    return {k: v for k, v in params.items() if k != "budget_tokens"}, budget


def validate_memory(strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check a strategy name and its params with the registry; the params to store.

    A bad name or param is a 422 naming the field as the client wrote it (memory.<name>).
    """
    budget = params.get("budget_tokens")
    if budget is not None and (not isinstance(budget, int) or budget < MIN_BUDGET):
        raise InvalidFieldError(
            f"budget_tokens must be an integer >= {MIN_BUDGET}, got {budget!r}",
            field="memory.budget_tokens",
        )
    scope = params.get("scope")
    if scope is not None and scope not in SCOPES:
        raise InvalidFieldError(
            f"scope must be one of {', '.join(SCOPES)}, got {scope!r}", field="memory.scope"
        )
    cap = params.get("relationship_tokens")
    if cap is not None and (
        not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= MAX_RELATIONSHIP_TOKENS
    ):
        raise InvalidFieldError(
            f"relationship_tokens must be an integer from 0 to {MAX_RELATIONSHIP_TOKENS}, "
            f"got {cap!r}",
            field="memory.relationship_tokens",
        )
    lore = params.get("lore_tokens")
    if lore is not None and (
        not isinstance(lore, int) or isinstance(lore, bool) or not 0 <= lore <= MAX_LORE_TOKENS
    ):
        raise InvalidFieldError(
            f"lore_tokens must be an integer from 0 to {MAX_LORE_TOKENS}, got {lore!r}",
            field="memory.lore_tokens",
        )
    try:
        registry.validate_params(strategy, strategy_params(params))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidFieldError(
            f"memory.{where}: {err['msg']} (strategy {strategy!r})",
            field=f"memory.{where}" if where else "memory",
        ) from None
    except MemoryStrategyError as exc:
        field = getattr(exc, "field", None) or "strategy"
        raise InvalidFieldError(str(exc), field=f"memory.{field}") from None
    return dict(params)


def session_info(session: SessionRecord) -> SessionInfo:
    return session.info()


def _summary_of(state: MemoryState) -> dict[str, Any]:
    """What an upkeep pass writes (SUMMARY_FIELDS)."""
    return {f: getattr(state, f) for f in SUMMARY_FIELDS}


class SessionMemory:
    def __init__(
        self, settings: Settings, engine: Engine, store: Store, recaller: Any = None
    ) -> None:
        self.settings, self.engine, self.store = settings, engine, store
        self.astore = AsyncStore(store)  # every read and write here, off the event loop
        self.deps = MemoryDeps(llm=engine, recaller=recaller)
        self.recaller = recaller
        self.relationships = Relationships(self.astore)
        self._chains: dict[str, asyncio.Task[None]] = {}  # the last observer of each session
        self._unobserved: dict[str, list[StoredMessage]] = {}
        self._upkeeping: dict[str, asyncio.Task[None]] = {}  # the upkeep lane of each session
        self._upkeep_again: set[str] = set()  # asked for while a pass was running
        # called after an upkeep pass changed the summary the next prompt shows (warm-up)
        self.on_upkept: Callable[[SessionRecord], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- assembling ----------------------------------------------------------------------------
    def strategy(self, session: SessionRecord) -> MemoryStrategy:
        return registry.create(session.strategy, strategy_params(session.params), self.deps)

    def budget(self, session: SessionRecord, max_tokens: int) -> int:
        window = self.engine.context_window
        budget = window - max_tokens
        if session.budget_tokens is not None:
            budget = min(budget, session.budget_tokens)
        if budget < MIN_BUDGET:
            raise InvalidFieldError(
                f"max_tokens {max_tokens} leaves only {budget} tokens of the {window}-token "
                "context window for the prompt",
                field="max_tokens",
            )
        return budget

    async def assemble(
        self,
        session: SessionRecord,
        persona: Persona,
        history: list[StoredMessage],
        content: str,
        max_tokens: int,
    ) -> Context:
        """The Context for `content` now; pure (nothing stored). ContextOverflowError -> 413."""
        state, _ = await self.astore.get_memory(session.user_id, session.id)
        strategy = self.strategy(session)
        lines, cap, scope = await self.relationships.context_inputs(
            session, persona, strategy.uses_recall and self.recaller is not None
        )
        books, lore_notes = await active_books(self.astore, session, persona)
        lore_cap = session.params.get("lore_tokens")
        req = AssembleRequest(
            session=session_info(session),
            system_prompt=persona.fill(persona.system_prompt),
            example_dialogue=persona.example_lines(),
            persona_pinned=persona.pinned(),
            history=history,
            state=state,
            new_message=content,
            budget=self.budget(session, max_tokens),
            scope=scope,
            relationship=lines,
            relationship_tokens=cap,
            user_name=persona.user_name,
            assistant_name=persona.name,
            lore=books,
            lore_tokens=lore_cap if isinstance(lore_cap, int) else DEFAULT_LORE_TOKENS,
        )
        token = recall_unavailable.set(None)
        try:
            result = strategy.assemble(req)
            context = await result if inspect.isawaitable(result) else result
            note = recall_unavailable.get()
        finally:
            recall_unavailable.reset(token)
        notes = [*lore_notes, *([note] if note else [])]
        if notes:
            context = context.model_copy(update={"notes": [*context.notes, *notes]})
        return context

    # -- observing -------------------------------------------------------------------------------
    def observe_later(
        self,
        session: SessionRecord,
        new_messages: Sequence[StoredMessage],
        context: Context | None = None,
    ) -> asyncio.Task[None]:
        """Queue an observation of `new_messages` after the previous one of this session."""
        previous = self._chains.get(session.id)
        task = asyncio.create_task(
            self._observe_after(previous, session, list(new_messages), context),
            name=f"observe-{session.id}",
        )
        self._chains[session.id] = task
        self._tasks.add(task)
        task.add_done_callback(self._forget_task(session.id))
        return task

    def _forget_task(self, session_id: str) -> Any:
        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if self._chains.get(session_id) is task:
                del self._chains[session_id]

        return done

    async def _observe_after(
        self,
        previous: asyncio.Task[None] | None,
        session: SessionRecord,
        new_messages: list[StoredMessage],
        context: Context | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        pending = self._unobserved.pop(session.id, []) + new_messages
        if not pending:
            return
        try:
            due = await self._observe(session, pending, context)
        except asyncio.CancelledError:
            self._unobserved[session.id] = pending
            raise
        except Exception:
            log.exception("memory observe failed for session %s; retried next turn", session.id)
            try:
                await self.astore.get_session(session.user_id, session.id)
            except NotFound:
                return  # the session was deleted meanwhile: nothing to retry
            self._unobserved[session.id] = pending
            return
        if due:
            self.upkeep_later(session)

    async def _observe(
        self, session: SessionRecord, new_messages: list[StoredMessage], context: Context | None
    ) -> bool:
        """Observe (without upkeep) and save; whether upkeep is due (MemoryStrategy.upkeep_due)."""
        # re-read: the strategy may have been changed since the turn began
        session = await self.astore.get_session(session.user_id, session.id)
        strategy = self.strategy(session)
        history = await self.astore.history(session.user_id, session.id)
        state, version = await self.astore.get_memory(session.user_id, session.id)
        info = session_info(session)
        new_state = await strategy.observe(
            info, history, state, new_messages, context, upkeep=False
        )
        try:
            await self.relationships.observed(session, without_forgotten(history, new_state))
        except Exception:  # the gist catches up on the next turn or the next new session
            log.exception("relationship gist update failed for session %s", session.id)
        if new_state != state:
            # compare-and-swap: a user's PATCH (or an upkeep pass) in between wins and this
            # observation is merged into it on the retry instead of overwriting it
            try:
                await self.astore.save_memory(session.user_id, session.id, new_state, version)
            except Conflict:
                state, version = await self.astore.get_memory(session.user_id, session.id)
                new_state = await strategy.observe(
                    info, history, state, new_messages, context, upkeep=False
                )
                await self.astore.save_memory(session.user_id, session.id, new_state, version)
        return strategy.upkeep_due(without_forgotten(history, new_state), new_state)

    def observing(self, session_id: str) -> bool:
        """Is an observation of the session queued or running (not counting upkeep)?"""
        return session_id in self._chains

    # -- upkeep ----------------------------------------------------------------------------------
    def upkeep_later(self, session: SessionRecord) -> None:
        """Run the session's upkeep (its summary) in its own lane: one pass at a time, then
        on while a backlog is left (an import's summary, a few chunks per pass)."""
        if session.id in self._upkeeping:
            self._upkeep_again.add(session.id)  # the running lane takes one more pass
            return
        task = self.background(self._upkeep(session), name=f"upkeep-{session.id}")
        self._upkeeping[session.id] = task
        task.add_done_callback(lambda _: self._upkeeping.pop(session.id, None))

    async def _upkeep(self, session: SessionRecord) -> None:
        more = True
        while more or session.id in self._upkeep_again:
            self._upkeep_again.discard(session.id)
            try:
                more = await self._upkeep_pass(session)
            except NotFound:
                return  # the session was deleted meanwhile
            except Exception:
                log.exception("memory upkeep failed for session %s; retried next turn", session.id)
                return

    async def _upkeep_pass(self, session: SessionRecord) -> bool:
        """One upkeep step, saved; whether a backlog is left (MemoryStrategy.backlog)."""
        session = await self.astore.get_session(session.user_id, session.id)
        strategy = self.strategy(session)
        history = await self.astore.history(session.user_id, session.id)
        state, version = await self.astore.get_memory(session.user_id, session.id)
        kept = without_forgotten(history, state)
        # an edited summary the summarizer folds new turns into is kept as a version
        new_state = after_summarizer(state, await strategy.upkeep(kept, state))
        if new_state == state:
            return False
        summary = _summary_of(new_state)
        base = state
        while True:
            try:
                await self.astore.save_memory(session.user_id, session.id, new_state, version)
                break
            except Conflict:
                # turns went on meanwhile: their bookkeeping stays, the summary is this pass's
                latest, version = await self.astore.get_memory(session.user_id, session.id)
                if _summary_of(latest) != _summary_of(base):
                    return True  # the summary was edited or dropped meanwhile: do it again
                base, new_state = latest, latest.model_copy(update=summary)
        if new_state.summary != base.summary and self.on_upkept is not None:
            self.on_upkept(session)
        return strategy.backlog(without_forgotten(history, new_state), new_state)

    async def forgot(self, session: SessionRecord) -> None:
        """After the user made the session forget turns: its gist is extracted again."""
        history = await self.astore.history(session.user_id, session.id)
        state, _ = await self.astore.get_memory(session.user_id, session.id)
        await self.relationships.rewrite_gist(session, without_forgotten(history, state))

    async def index_history(self, session: SessionRecord) -> None:
        """Put every stored message of the session in the vector index (strategy changes)."""
        if self.recaller is None:
            return
        history = await self.astore.history(session.user_id, session.id)
        state, _ = await self.astore.get_memory(session.user_id, session.id)
        forgotten = set(state.forgotten)
        keep = [m for m in history if m.id not in forgotten]
        if keep:
            await self.recaller.observe(session_info(session), keep)

    def background(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %s", name, t.exception())

        task.add_done_callback(done)
        return task

    async def drain(self, session_id: str | None = None, timeout: float | None = None) -> None:
        """Wait for queued observations and the upkeep they started (of one session, or all)."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while tasks := [
            t for t in list(self._tasks) if session_id is None or session_id in t.get_name()
        ]:
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(tasks, timeout=left)

    async def aclose(self, timeout: float = 20.0) -> None:
        """Let running observations finish (bounded), then cancel the rest."""
        await self.drain(timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
