"""Recall that a stopped vector server cannot take down (issue 15).

Recall is a help, not a requirement: when the Chroma server is stopped, restarting or
unreachable, a turn goes on without recalled turns instead of failing, and its Context says so
(`notes`, shown by the inspector). The failure is per call: the next turn tries again, so recall
comes back by itself with the server, and turns stored meanwhile are indexed then (recall
indexes what it has not seen yet; GET .../memory counts them as `indexing` until it has).

A context variable carries the failure from the recaller, deep inside a strategy's assemble,
back to SessionMemory.assemble, which awaits it in the same task.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from memory.types import ScopeSession, SessionInfo, StoredMessage

log = logging.getLogger(__name__)

recall_unavailable: ContextVar[str | None] = ContextVar("recall_unavailable", default=None)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GuardedRecaller:
    """A Recaller whose recall degrades to "nothing recalled" when the index fails."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.index = getattr(inner, "index", None)

    async def recall(
        self,
        session: SessionInfo,
        query: str,
        history: Sequence[StoredMessage],
        exclude_ids: set[int],
        limit: int,
        scope: Sequence[ScopeSession] = (),
    ) -> list[int]:
        try:
            return list(await self.inner.recall(session, query, history, exclude_ids, limit, scope))
        except ValueError:
            raise  # the caller's mistake (a bad limit or query), not the index's
        except Exception as exc:  # noqa: BLE001 - any index failure: reply without recall
            reason = describe(exc)
            log.warning("recall unavailable for session %s: %s", session.id, reason)
            recall_unavailable.set(
                f"Recall was unavailable ({reason}): this reply was written without recalled turns."
            )
            return []

    async def observe(self, session: SessionInfo, messages: Sequence[StoredMessage]) -> None:
        await self.inner.observe(session, messages)

    async def forget(self, session: SessionInfo, message_ids: Sequence[int] | None = None) -> None:
        await self.inner.forget(session, message_ids)
