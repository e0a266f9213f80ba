"""A reply being generated, and the per-session locks that serialize turns.

Two locks serialize a session's turns: an asyncio.Lock within this process, and the store's
turn lock (a PostgreSQL advisory lock) across API replicas sharing one database. `TurnGuard`
holds both for the whole turn.

A `Turn` runs in its own asyncio task, not in the request that asked for it: the request only
watches (reads deltas, awaits the result). A client that goes away cancels the task, and the
task itself stores what was produced as `interrupted`, so persistence never depends on how the
web server tears a request down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import SessionBusyError
from app.llm.types import DEFAULT_MEMORY_BIAS, FinishReason, GenerationParams, Usage
from app.service.store import AsyncStore
from app.store.locks import TurnLock
from app.store.records import MessageRecord
from memory.notes import split_notes
from memory.types import Context

log = logging.getLogger(__name__)
_END = object()


@dataclass(frozen=True)
class TurnOptions:
    """What the caller may set for one reply; None = the persona's or the server's default."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    memory_bias: float | None = None

    def params(self, defaults: dict[str, Any], default_max_tokens: int) -> GenerationParams:
        def pick(name: str, fallback: Any) -> Any:
            value = getattr(self, name)
            if value is not None:
                return value
            return defaults.get(name, fallback) if defaults.get(name) is not None else fallback

        return GenerationParams(
            temperature=float(pick("temperature", 0.0)),
            top_p=float(pick("top_p", 1.0)),
            max_tokens=int(pick("max_tokens", default_max_tokens)),
            seed=pick("seed", None),
            stop=tuple(self.stop) or tuple(defaults.get("stop") or ()),
            frequency_penalty=float(pick("frequency_penalty", 0.0)),
            presence_penalty=float(pick("presence_penalty", 0.0)),
            repetition_penalty=float(pick("repetition_penalty", 1.0)),
            logit_bias=self.logit_bias,
            memory_bias=float(pick("memory_bias", DEFAULT_MEMORY_BIAS)),
        )


PENALTY_REPLIES = 2  # the persona's last replies count as said for the repetition penalties


def with_memory(
    params: GenerationParams, messages: Sequence[Mapping[str, str]]
) -> GenerationParams:
    """`params` with the words of the recalled notes among `messages` to lift (memory_bias),
    measured against the rest of the system text."""
    notes, common = split_notes(m["content"] for m in messages if m["role"] == "system")
    return dataclasses.replace(params, memory_notes=notes, memory_common=common)


def recent_replies(
    messages: Sequence[tuple[str, str]], n: int = PENALTY_REPLIES
) -> tuple[str, ...]:
    """The contents of the last `n` assistant messages of (role, content) pairs: what the
    penalties count as already said, so that a reply does not repeat last turn's sentence. The
    user's words are not in it: echoing a name or a fact the user gave is how answers work."""
    return tuple(c for r, c in messages if r == "assistant" and c)[-n:]


@dataclass
class TurnResult:
    message: MessageRecord  # the user's message
    reply: MessageRecord  # status complete, interrupted or error
    usage: Usage
    context_id: str | None
    finish_reason: FinishReason | None
    error: str | None = None  # engine failure message when reply.status == "error"


@dataclass(eq=False)  # hashed by identity: the service keeps a set of turns in flight
class Turn:
    """Handle on a reply in progress. `deltas()` streams text; `result()` awaits the end."""

    session_id: str
    message: MessageRecord
    reply: MessageRecord  # the pending reply row
    context: Context
    params: GenerationParams
    # who speaks in the Context: a label of theirs opening the reply is dropped (ReplyCut)
    speakers: tuple[str, ...] = ()
    _queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[TurnResult] | None = None
    settled: bool = False  # the reply row was finalized and the session lock released
    _stopping: bool = False  # cancel() asked once, or generation is over: only bookkeeping left

    def push(self, text: str) -> None:
        self._queue.put_nowait(text)

    def end(self) -> None:
        self._stopping = True
        self._queue.put_nowait(_END)

    def start(self, body: Coroutine[Any, Any, TurnResult]) -> None:
        self.task = asyncio.create_task(body, name=f"turn-{self.session_id}")

    async def deltas(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            yield item

    async def result(self) -> TurnResult:
        assert self.task is not None
        # shield: a caller that stops waiting must not cancel the turn's bookkeeping
        return await asyncio.shield(self.task)

    def cancel(self) -> None:
        """Stop generating; the task still stores the partial reply as interrupted. Only the
        first call acts, and none once generation is over: a second cancel (a client leaving,
        then shutdown) would cut that bookkeeping short and leave the reply pending."""
        if self.task is not None and not self.task.done() and not self._stopping:
            self._stopping = True
            self.task.cancel()

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()


class ReplyCheckpoints:
    """Writes a streaming reply's text so far onto its pending row, at most every `interval`
    seconds, so that a hard kill loses only the last moments of it (the next start marks the
    row interrupted, text kept). Generation never waits for a write: `write` runs in a worker
    thread, at most one at a time per reply (text that arrives meanwhile goes in the next one).

    `close()` before the final commit: it cancels what is scheduled and waits for the write in
    flight, so the final text is always the last one written."""

    def __init__(self, parts: list[str], write: Callable[[str], Any], interval: float) -> None:
        self._parts = parts  # the reply's pieces, appended to by the generating task
        self._write, self._interval = write, interval
        self._saved = 0  # pieces covered by the last write started
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def changed(self) -> None:
        """New text arrived: make sure a write starts within the interval."""
        if self._closed or self._timer is not None:
            return
        if self._task is not None and not self._task.done():
            return  # the write in flight schedules the next one when it ends
        self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._interval, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._closed or len(self._parts) == self._saved:
            return
        self._saved = len(self._parts)
        self._task = asyncio.create_task(self._run("".join(self._parts)))

    async def _run(self, text: str) -> None:
        try:
            await asyncio.to_thread(self._write, text)
        except Exception:  # noqa: BLE001 - a lost checkpoint must not fail the reply
            log.exception("checkpointing a reply failed")
        if not self._closed and len(self._parts) > self._saved:
            self._schedule()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            # shielded: the thread runs on anyway, and the final commit must follow it
            await asyncio.shield(self._task)


class SessionLocks:
    """One asyncio.Lock per session, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def get(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        return lock

    async def acquire(self, session_id: str, wait_seconds: float) -> asyncio.Lock:
        """The session's lock, held; SessionBusyError after `wait_seconds`."""
        lock = self.get(session_id)
        try:
            async with asyncio.timeout(wait_seconds if wait_seconds > 0 else 0.001):
                await lock.acquire()
        except TimeoutError:
            raise busy_error(session_id, wait_seconds) from None
        return lock


def busy_error(session_id: str, wait_seconds: float) -> SessionBusyError:
    return SessionBusyError(
        f"session {session_id} is busy generating a reply; waited {wait_seconds:g} s "
        "(MEMENTO_SESSION_WAIT_SECONDS)",
        field="session_id",
    )


class TurnGuard:
    """A session's in-process lock and its cross-replica store lock, held together for one
    turn (from assembling the context until the reply is stored). Release exactly once."""

    def __init__(self, local: asyncio.Lock, shared: TurnLock) -> None:
        self._local, self._shared = local, shared
        self._released = False

    @classmethod
    async def acquire(
        cls, locks: SessionLocks, store: AsyncStore, session_id: str, wait_seconds: float
    ) -> TurnGuard:
        """Both locks, within `wait_seconds` in all; SessionBusyError (409) otherwise. The
        in-process lock comes first, so a replica holds at most one store lock (and one
        database connection) per session."""
        deadline = time.monotonic() + wait_seconds
        local = await locks.acquire(session_id, wait_seconds)
        try:
            left = max(deadline - time.monotonic(), 0.0)
            shared = await store.acquire_turn_lock(session_id, left)
        except BaseException:
            local.release()
            raise
        if shared is None:  # a turn on another replica still runs
            local.release()
            raise busy_error(session_id, wait_seconds)
        return cls(local, shared)

    async def release(self) -> None:
        """The store lock first (in a thread: it is a database call), then the local one.
        A cancelled caller still releases both: the thread runs on regardless."""
        if self._released:
            return
        self._released = True
        try:
            await asyncio.to_thread(self._release_shared)
        finally:
            self._local.release()

    def _release_shared(self) -> None:
        try:
            self._shared.release()
        except Exception:  # noqa: BLE001 - closing the connection frees the lock anyway
            log.exception("releasing the turn lock failed")
