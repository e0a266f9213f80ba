"""ReplyCheckpoints (pure scheduling logic, so a recording `write` stands in for the store; the
real store and server are in tests/app/store/test_repo.py, test_chat.py and
tests/security/test_crash.py): writes never overlap, never hold generation up, and none starts
or lands after close()."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from app.service.turns import ReplyCheckpoints, Turn


class Recorder:
    """A `write` that records what it saw and can be held, like a slow database."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.active = 0
        self.most_active = 0
        self.fail_next = False
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.entered.set()
        try:
            self.release.wait()
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("database went away")
            self.texts.append(text)
        finally:
            with self._lock:
                self.active -= 1


async def until(check: Callable[[], bool], what: str) -> None:
    """Let the loop run until check() holds (condition-based, no timing assumptions)."""
    async with asyncio.timeout(60):
        while not check():
            await asyncio.sleep(0.001)
    assert check(), what


async def test_a_slow_write_never_holds_generation_and_writes_never_overlap() -> None:
    parts: list[str] = []
    write = Recorder()
    write.release.clear()  # the first write hangs, like a database under load
    checkpoints = ReplyCheckpoints(parts, write, interval=0)
    parts.append("Once")
    checkpoints.changed()
    await asyncio.to_thread(write.entered.wait)
    for word in (" upon", " a", " time"):  # generation goes on while the write hangs
        parts.append(word)
        checkpoints.changed()
    assert write.texts == [] and write.active == 1
    write.release.set()
    await until(lambda: write.texts[-1:] == ["Once upon a time"], "the coalesced next write")
    assert write.texts == ["Once", "Once upon a time"]
    assert write.most_active == 1
    await checkpoints.close()


async def test_close_waits_for_the_write_in_flight_and_none_starts_after() -> None:
    parts: list[str] = []
    write = Recorder()
    write.release.clear()
    checkpoints = ReplyCheckpoints(parts, write, interval=0)
    parts.append("Hello")
    checkpoints.changed()
    await asyncio.to_thread(write.entered.wait)
    parts.append(" world")
    checkpoints.changed()
    closing = asyncio.create_task(checkpoints.close())
    await asyncio.sleep(0)
    assert not closing.done()  # the final commit must not overtake the write in flight
    write.release.set()
    await closing
    assert write.texts == ["Hello"] and write.active == 0
    parts.append("!")
    checkpoints.changed()  # late text after close: nothing scheduled
    await asyncio.sleep(0)
    assert write.texts == ["Hello"]


async def test_a_scheduled_write_is_dropped_by_close() -> None:
    parts = ["Hi"]
    write = Recorder()
    checkpoints = ReplyCheckpoints(parts, write, interval=3600)
    checkpoints.changed()
    await checkpoints.close()
    assert write.texts == []


async def test_a_failed_write_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    parts = ["a"]
    write = Recorder()
    write.fail_next = True
    checkpoints = ReplyCheckpoints(parts, write, interval=0)
    checkpoints.changed()
    await until(lambda: "checkpointing a reply failed" in caplog.text, "the failure logged")
    parts.append("b")
    checkpoints.changed()
    await until(lambda: write.texts == ["ab"], "the next write")
    await checkpoints.close()


async def test_no_new_text_no_write() -> None:
    parts = ["same"]
    write = Recorder()
    checkpoints = ReplyCheckpoints(parts, write, interval=0)
    checkpoints.changed()
    await until(lambda: write.texts == ["same"], "the first write")
    checkpoints.changed()  # nothing appended since
    await asyncio.sleep(0.01)
    await checkpoints.close()
    assert write.texts == ["same"]


async def test_a_second_cancel_does_not_cut_the_replys_bookkeeping_short() -> None:
    """A client leaving, then shutdown: the turn must still finish storing its reply."""
    turn = Turn(session_id="s", message=None, reply=None, context=None, params=None)  # type: ignore[arg-type]
    stored: list[str] = []
    generating = asyncio.Event()
    finalizing = asyncio.Event()

    async def body() -> str:
        try:
            generating.set()
            await asyncio.sleep(3600)  # generation, until cancelled
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        finally:
            turn.end()
        finalizing.set()
        await asyncio.sleep(0.05)  # the final commit, in a thread in the service
        stored.append("interrupted")
        return "done"

    turn.start(body())  # type: ignore[arg-type]
    await generating.wait()
    turn.cancel()
    await finalizing.wait()
    turn.cancel()  # shutdown's cancel lands while the reply is being stored
    assert await turn.task == "done"  # type: ignore[misc]
    assert stored == ["interrupted"]
