"""MLXWorker scheduling: fair rounds between replies, their steps answered as one batch,
background work yields to them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from app.llm.worker import MLXWorker, Step


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


async def test_a_first_background_stream_goes_before_the_others() -> None:
    """A warm-up (first) queued after a summary (plain background) runs before it; both wait
    for a reply."""
    worker, log = MLXWorker("t-first"), []

    async def warm() -> None:
        async for _ in worker.iterate(lambda: _steps("warm", 2, log), background=True, first=True):
            pass

    try:
        await _with_worker_held(
            worker, _drain(worker, "sum", 3, log, True), warm(), _drain(worker, "fg", 2, log, False)
        )
    finally:
        worker.shutdown()
    assert log == ["fg", "fg", "warm", "warm", "sum", "sum", "sum"]


async def test_a_background_round_ends_at_the_next_piece_when_a_reply_arrives() -> None:
    """Two background streams share a round; a reply that arrives during the first one's
    piece of work runs before the second one's."""
    worker, log = MLXWorker("t-preempt"), []
    started, go = threading.Event(), threading.Event()

    def slow(tag: str) -> Iterator[int]:
        log.append(tag)
        started.set()
        go.wait(5)
        yield 0

    async def bg(tag: str) -> None:
        async for _ in worker.iterate(lambda: slow(tag), background=True):
            pass

    try:
        gate = threading.Event()
        blocker = asyncio.wrap_future(worker.submit(gate.wait))
        tasks = [asyncio.create_task(bg("a")), asyncio.create_task(bg("b"))]
        await asyncio.sleep(0.05)  # both registered: they share the next round
        gate.set()
        await blocker
        while not started.is_set():
            await asyncio.sleep(0.001)
        fg = asyncio.create_task(_drain(worker, "fg", 2, log, False))
        await asyncio.sleep(0.05)  # the reply is queued while "a" works
        go.set()
        await asyncio.gather(fg, *tasks)
    finally:
        worker.shutdown()
    assert log == ["a", "fg", "fg", "b"]


async def test_background_stream_runs_when_alone() -> None:
    worker, log = MLXWorker("t-alone"), []
    try:
        await _drain(worker, "bg", 2, log, True)
    finally:
        worker.shutdown()
    assert log == ["bg", "bg"]


class _Runner:
    """Answers each payload n with n * 10, recording the batches it was given."""

    def __init__(self, fail: bool = False, seconds: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.fail, self.seconds = fail, seconds

    def run_steps(self, payloads: Sequence[int]) -> list[object]:
        self.batches.append(list(payloads))
        time.sleep(self.seconds)  # a step that takes a while, like a real one
        if self.fail:
            raise RuntimeError("runner broke")
        return [ValueError("bad step") if p < 0 else p * 10 for p in payloads]


def _asking(runner: _Runner, tag: int, n: int) -> Iterator[object]:
    for i in range(n):
        answer = yield Step(runner, tag)
        yield (tag, i, answer)


async def _items(worker: MLXWorker, factory: Callable[[], Iterator[object]]) -> list[object]:
    return [item async for item in worker.iterate(factory)]


async def test_steps_asked_in_one_round_are_answered_as_one_batch() -> None:
    worker, runner = MLXWorker("t-batch"), _Runner()
    try:
        gate = threading.Event()
        blocker = asyncio.wrap_future(worker.submit(gate.wait))
        jobs = [
            asyncio.create_task(_items(worker, lambda t=t, n=n: _asking(runner, t, n)))
            for t, n in ((1, 3), (2, 1), (3, 2))
        ]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        got = await asyncio.gather(*jobs)
    finally:
        worker.shutdown()
    assert got[0] == [(1, 0, 10), (1, 1, 10), (1, 2, 10)]
    assert got[1] == [(2, 0, 20)]
    assert runner.batches == [[1, 2, 3], [1, 3], [1]]  # the batch shrinks as replies end


async def test_a_failed_step_reaches_only_its_own_stream() -> None:
    worker, runner = MLXWorker("t-fail"), _Runner()
    try:
        results = await asyncio.gather(
            _items(worker, lambda: _asking(runner, -1, 2)),
            _items(worker, lambda: _asking(runner, 4, 2)),
            return_exceptions=True,
        )
    finally:
        worker.shutdown()
    assert isinstance(results[0], ValueError)
    assert results[1] == [(4, 0, 40), (4, 1, 40)]


async def test_a_runner_that_raises_fails_its_batch_not_the_worker() -> None:
    worker = MLXWorker("t-broken")
    try:
        with pytest.raises(RuntimeError, match="runner broke"):
            await _items(worker, lambda: _asking(_Runner(fail=True), 1, 1))
        assert await worker.run(lambda: 5) == 5
    finally:
        worker.shutdown()


async def test_streams_beyond_max_active_wait_their_turn() -> None:
    worker, log = MLXWorker("t-cap", max_active=1), []
    try:
        await _with_worker_held(
            worker, _drain(worker, "a", 3, log, False), _drain(worker, "b", 2, log, False)
        )
    finally:
        worker.shutdown()
    assert log == ["a", "a", "a", "b", "b"]


async def test_a_decoding_background_stream_pauses_while_a_foreground_one_runs() -> None:
    worker, runner = MLXWorker("t-spare"), _Runner(seconds=0.005)
    try:  # the background reply is still decoding when the foreground one arrives
        bg = asyncio.create_task(_items_bg(worker, lambda: _asking(runner, 7, 200)))
        while not runner.batches:
            await asyncio.sleep(0.001)
        fg = await _items(worker, lambda: _asking(runner, 1, 2))
        done = len(runner.batches)
        await bg
    finally:
        worker.shutdown()
    assert fg == [(1, 0, 10), (1, 1, 10)]
    assert [1] in runner.batches and all(b in ([1], [7]) for b in runner.batches)
    assert done < 200 + 2  # the background one was not finished first


async def _items_bg(worker: MLXWorker, factory: Callable[[], Iterator[object]]) -> list[object]:
    return [item async for item in worker.iterate(factory, background=True)]


def test_a_consumer_that_cannot_take_items_does_not_end_the_worker() -> None:
    """A consumer whose event loop has closed (a client gone mid-reply in a test or at
    shutdown) once killed the thread, and every later call hung."""
    worker = MLXWorker("t-closed")
    loop = asyncio.new_event_loop()
    try:

        async def first_item() -> int:
            async for item in worker.iterate(lambda: iter(range(1000))):
                return item
            raise AssertionError("no item")

        assert loop.run_until_complete(first_item()) == 0
        loop.close()  # the stream may still be delivering into this loop
        assert worker.submit(lambda: 42).result(timeout=30) == 42
    finally:
        worker.shutdown()


async def test_a_failing_round_ends_its_streams_not_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = MLXWorker("t-round")
    try:

        def broken_round(streams: object) -> None:
            raise ValueError("scheduler bug")

        monkeypatch.setattr(worker, "_round", broken_round)

        async def consume() -> None:
            async for _ in worker.iterate(lambda: iter(range(3))):
                pass

        with pytest.raises(ValueError, match="scheduler bug"):
            await asyncio.wait_for(consume(), timeout=30)
        assert await asyncio.wait_for(worker.run(lambda: 7), timeout=30) == 7
    finally:
        worker.shutdown()
