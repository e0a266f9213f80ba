"""GuardedRecaller: an index that fails or hangs costs a turn its recall, never the turn."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.recall_guard import GuardedRecaller, recall_unavailable
from memory.types import SessionInfo, StoredMessage

SESSION = SessionInfo(id="s1", user_id="u1", persona_id="assistant")


class _Inner:
    """A recaller that answers [1, 2] after `gate` opens, or raises `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.gate, self.error, self.finished = asyncio.Event(), error, False

    async def recall(
        self,
        session: SessionInfo,
        query: str,
        history: Sequence[StoredMessage],
        exclude_ids: set[int],
        limit: int,
        scope: Sequence[object] = (),
    ) -> list[int]:
        if self.error is not None:
            raise self.error
        await self.gate.wait()
        self.finished = True
        return [1, 2]

    async def observe(self, session: SessionInfo, messages: Sequence[StoredMessage]) -> None:
        await self.gate.wait()
        self.finished = True


async def _recall(guard: GuardedRecaller) -> tuple[list[int], str | None]:
    token = recall_unavailable.set(None)
    try:
        return await guard.recall(SESSION, "q", [], set(), 5), recall_unavailable.get()
    finally:
        recall_unavailable.reset(token)


async def test_an_answer_in_time_is_passed_on() -> None:
    inner = _Inner()
    inner.gate.set()
    assert await _recall(GuardedRecaller(inner, timeout=5)) == ([1, 2], None)


async def test_a_hung_index_costs_the_turn_its_recall_after_the_timeout() -> None:
    inner = _Inner()  # never answers until the gate opens
    ids, note = await _recall(GuardedRecaller(inner, timeout=0.2))
    assert ids == []
    assert note is not None and "no answer within 0.2 s" in note
    # the recall was not cancelled: a slow catch-up (an import being indexed) still finishes
    inner.gate.set()
    for _ in range(100):
        if inner.finished:
            break
        await asyncio.sleep(0.01)
    assert inner.finished


async def test_an_index_error_is_a_note_not_a_failure() -> None:
    ids, note = await _recall(GuardedRecaller(_Inner(ConnectionError("refused")), timeout=5))
    assert ids == [] and note is not None and "ConnectionError: refused" in note


async def test_a_bad_query_is_still_the_callers_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        await _recall(GuardedRecaller(_Inner(ValueError("empty query")), timeout=5))


async def test_indexing_on_a_hung_index_lets_the_turn_be_saved() -> None:
    inner = _Inner()
    await GuardedRecaller(inner, timeout=0.2).observe(SESSION, [])  # returns, does not raise
    assert not inner.finished
    inner.gate.set()
    for _ in range(100):
        if inner.finished:
            break
        await asyncio.sleep(0.01)
    assert inner.finished  # and the indexing went on


class _Forgetful(_Inner):
    """Its index fails the first `fails` forgets; records the ones that got through."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.gate.set()
        self.fails, self.forgotten = fails, []

    async def forget(self, session: SessionInfo, message_ids: Sequence[int] | None = None) -> None:
        if self.fails:
            self.fails -= 1
            raise ConnectionError("chroma down")
        self.forgotten.append(message_ids)


async def test_a_forget_the_index_refuses_is_retried_not_failed() -> None:
    inner = _Forgetful(fails=1)
    guard = GuardedRecaller(inner, timeout=5)
    await guard.forget(SESSION, [7])  # does not raise: the session's memory lists #7 forgotten
    assert inner.forgotten == []
    await _recall(guard)  # the next recall retries it in the background
    for _ in range(100):
        if inner.forgotten:
            break
        await asyncio.sleep(0.01)
    assert inner.forgotten == [[7]]
