"""MLXWorker scheduling: fair round-robin between replies, background work yields to them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from app.llm.worker import MLXWorker


def _steps(tag: str, n: int, log: list[str]) -> Iterator[int]:
    for i in range(n):
        log.append(tag)  # appended on the worker thread, in stepping order
        yield i


async def _drain(worker: MLXWorker, tag: str, n: int, log: list[str], background: bool) -> None:
    async for _ in worker.iterate(lambda: _steps(tag, n, log), background=background):
        pass


async def _with_worker_held(worker: MLXWorker, *jobs) -> None:
    """Queue every job while the worker is busy, so the scheduler sees them all at once."""
    gate = threading.Event()
    blocker = asyncio.wrap_future(worker.submit(gate.wait))
    tasks = [asyncio.create_task(job) for job in jobs]
    await asyncio.sleep(0.05)  # let every iterate() register its stream
    gate.set()
    await blocker
    await asyncio.gather(*tasks)


async def test_foreground_streams_take_turns() -> None:
    worker, log = MLXWorker("t-fair"), []
    try:
        await _with_worker_held(
            worker, _drain(worker, "a", 3, log, False), _drain(worker, "b", 3, log, False)
        )
    finally:
        worker.shutdown()
    assert log == ["a", "b", "a", "b", "a", "b"]


async def test_background_stream_waits_for_foreground_ones() -> None:
    worker, log = MLXWorker("t-prio"), []
    try:
        await _with_worker_held(
            worker,
            _drain(worker, "bg", 3, log, True),
            _drain(worker, "fg", 4, log, False),
        )
    finally:
        worker.shutdown()
    assert log == ["fg"] * 4 + ["bg"] * 3


async def test_background_stream_runs_when_alone() -> None:
    worker, log = MLXWorker("t-alone"), []
    try:
        await _drain(worker, "bg", 2, log, True)
    finally:
        worker.shutdown()
    assert log == ["bg", "bg"]
