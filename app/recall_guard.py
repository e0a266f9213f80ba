"""Recall that a stopped vector server cannot take down (issue 15).

Recall is a help, not a requirement: when the Chroma server is stopped, restarting or
unreachable, a turn goes on without recalled turns instead of failing, and its Context says so
(`notes`, shown by the inspector). The failure is per call: the next turn tries again, so recall
comes back by itself with the server, and turns stored meanwhile are indexed then (recall
indexes what it has not seen yet; GET .../memory counts them as `indexing` until it has).
A server that hangs instead of stopping is a failure too, after `timeout` seconds.

A context variable carries the failure from the recaller, deep inside a strategy's assemble,
back to SessionMemory.assemble, which awaits it in the same task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from memory.types import ScopeSession, SessionInfo, StoredMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

recall_unavailable: ContextVar[str | None] = ContextVar("recall_unavailable", default=None)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retrieve(call: asyncio.Future[Any]) -> None:
    """Take the outcome of a recall that nobody may wait for any more (timed out, or its turn
    cancelled), so that asyncio does not log it as never retrieved."""
    if not call.cancelled():
        call.exception()


class GuardedRecaller:
    """A Recaller whose recall degrades to "nothing recalled" when the index fails."""

    def __init__(self, inner: Any, timeout: float | None = None) -> None:
        self.inner, self.timeout = inner, timeout
        self.index = getattr(inner, "index", None)
        # forgets whose index part failed: (session, message ids or None for all), in order
        self._unforgotten: list[tuple[SessionInfo, Sequence[int] | None]] = []
        self._retrying: asyncio.Future[None] | None = None

    async def recall(
        self,
        session: SessionInfo,
        query: str,
        history: Sequence[StoredMessage],
        exclude_ids: set[int],
        limit: int,
        scope: Sequence[ScopeSession] = (),
    ) -> list[int]:
        self._retry_forgets_later()
        try:
            return list(
                await self._bounded(
                    self.inner.recall(session, query, history, exclude_ids, limit, scope)
                )
            )
        except ValueError:
            raise  # the caller's mistake (a bad limit or query), not the index's
        except Exception as exc:  # noqa: BLE001 - any index failure: reply without recall
            reason = self._reason(exc)
            log.warning("recall unavailable for session %s: %s", session.id, reason)
            recall_unavailable.set(
                f"Recall was unavailable ({reason}): this reply was written without recalled turns."
            )
            return []

    async def observe(self, session: SessionInfo, messages: Sequence[StoredMessage]) -> None:
        self._retry_forgets_later()
        try:
            await self._bounded(self.inner.observe(session, messages))
        except TimeoutError:
            # the turn's state must still be saved; the indexing finishes when the server
            # answers, and if it never does, the next recall indexes what it has not seen.
            # Info, not a warning: a large import's indexing takes this long on a small machine
            log.info(
                "indexing session %s: not done within %g s; it goes on in the background",
                session.id,
                self.timeout,
            )

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout:g} s"
        return describe(exc)

    async def _bounded(self, work: Coroutine[Any, Any, T]) -> T:
        """`work`, waited for at most `timeout` seconds (TimeoutError after). Shielded: work
        that is only slow (a recall catching up on an import's turns) goes on and is done for
        the next turn; work stuck on a hung server finishes when the server answers."""
        call = asyncio.ensure_future(work)
        call.add_done_callback(_retrieve)
        return await asyncio.wait_for(asyncio.shield(call), self.timeout)

    async def forget(self, session: SessionInfo, message_ids: Sequence[int] | None = None) -> None:
        """Take turns (all of a session's: None) out of the index. The user's request does not
        fail with the index: the session's memory already lists them as forgotten, so recall
        never shows them; deleting their vectors is retried in the background at this
        process's next recall, indexing or forget (a restart leaves them to `memento
        reindex`)."""
        self._retry_forgets_later()
        try:
            await self._bounded(self.inner.forget(session, message_ids))
        except Exception as exc:  # noqa: BLE001 - any index failure: retried later
            log.warning(
                "forgetting in session %s: the vector index failed (%s); retried later",
                session.id,
                self._reason(exc),
            )
            self._unforgotten.append((session, message_ids))

    def _retry_forgets_later(self) -> None:
        """Retry the failed forgets in the background (a turn never waits for them)."""
        if self._unforgotten and (self._retrying is None or self._retrying.done()):
            self._retrying = asyncio.ensure_future(self._retry_forgets())

    async def _retry_forgets(self) -> None:
        while self._unforgotten:
            session, ids = self._unforgotten[0]
            try:
                await self._bounded(self.inner.forget(session, ids))
            except Exception:  # noqa: BLE001 - still failing: the next call tries again
                return
            self._unforgotten.pop(0)
