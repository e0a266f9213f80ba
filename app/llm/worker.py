"""The one thread that owns all MLX work.

MLX streams belong to the thread that created them (mlx 0.31+ raises otherwise), so the model,
its KV caches and the embedding model all live on this thread. One-shot calls (`run`) and
generators (`iterate`) share it.

The thread works in rounds. Each round runs the one-shot calls queued at its start, then
advances every active generator by one item, and then answers together every `Step` the
generators asked for in that round: a decode step of many sequences is one batched call
(continuous batching: a sequence joins the batch at its first step after its prompt, and leaves
when it ends or is cancelled). Until a generator first asks for a Step, each of its items may be
a bounded piece of heavy work (a prompt chunk); such advances get a time budget per round once
one has run, so a long prompt arriving never freezes the others' streams for more than about
that budget. At most `max_active` generators are started at once (each holds a KV cache); the
rest wait in arrival order. Background generators (memory upkeep) run rounds only when no
foreground one exists, even one already decoding: joining a single reply's step would turn its
GEMV into a slower two-row GEMM, and its prompt chunks would shrink, for work nobody waits on.
A background round ends early when foreground work arrives, after the piece of work it is in.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_DONE = object()
_NOTHING = object()
# Seconds of prompt chunks per round once one has run: the most a decoding stream waits
# for others' prompts each round (a round's own batched step is ~0.1-0.3 s on 2 cores).
PREFILL_BUDGET_S = 0.25


class StepRunner(Protocol):
    def run_steps(self, payloads: Sequence[Any]) -> list[Any]:
        """One result per payload, in order; an exception instance for one that failed."""


@dataclass(eq=False)
class Step:
    """Asked for by a generator (`result = yield Step(runner, payload)`): the worker gathers
    the steps of a round by runner and answers each through `send` (or `throw`)."""

    runner: StepRunner
    payload: Any


@dataclass(eq=False)
class _Stream:
    factory: Callable[[], Generator[Any, Any, Any]]
    deliver: Callable[[Any], None]  # thread-safe: puts an item (or _DONE / an exception) out
    background: bool = False
    # background work that goes before other background work: a warm-up, which the user's next
    # turn waits on, before a summary, which nobody waits on (issue 13)
    first: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    gen: Generator[Any, Any, Any] | None = None
    step: Step | None = None  # asked for, not yet answered
    decoding: bool = False  # has asked for a Step: from here on its advances are cheap
    done: bool = False

    def put(self, item: Any) -> None:
        """Hand `item` to the consumer. Never raises: whatever becomes of one consumer (its
        event loop closed, say), the worker thread must go on serving every other caller."""
        try:
            self.deliver(item)
        except BaseException:  # noqa: BLE001 - see above
            log.exception("an MLX stream's consumer could not take an item")


class MLXWorker:
    def __init__(self, name: str = "mlx", max_active: int = 64) -> None:
        self.max_active = max_active
        self._calls: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            collections.deque()
        )
        self._streams: collections.deque[_Stream] = collections.deque()
        self._background: collections.deque[_Stream] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self.decoding = 0  # streams that asked for a Step last round (read on this thread)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- public API -------------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            if self._stopping:
                raise RuntimeError("the MLX worker is shut down")
            self._calls.append((lambda: fn(*args, **kwargs), fut))
            self._wake.notify()
        return fut

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking call from any non-worker thread (CLI, start-up)."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    async def iterate(
        self,
        factory: Callable[[], Generator[T | Step, Any, Any]],
        background: bool = False,
        first: bool = False,
    ) -> AsyncGenerator[T, None]:
        """Run a generator on the worker thread and yield its items here. Background streams
        run only while no foreground one waits, and of them the `first` ones before the rest.

        Leaving the `async for` early (or the task being cancelled) cancels the generator before
        its next step and closes it on the worker thread.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def deliver(item: Any) -> None:
            # a closed consumer loop means nobody is listening any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        stream = _Stream(factory=factory, deliver=deliver, background=background, first=first)
        with self._wake:
            if self._stopping:
                raise RuntimeError("the MLX worker is shut down")
            self._queue_of(stream).append(stream)
            self._wake.notify()
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stream.cancelled.set()
            with self._wake:
                self._wake.notify()

    def shutdown(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._stopping = True
            for s in (*self._streams, *self._background):
                s.cancelled.set()
            self._wake.notify()
        self._thread.join(timeout)
        self._wait_native_exit(timeout)

    def _wait_native_exit(self, timeout: float) -> None:
        """Wait until the OS thread is gone, not just its Python part.

        MLX keeps a thread-local compile cache whose destructor re-enters Python at thread exit;
        if the interpreter is finalizing by then, the process aborts ("terminate called without
        an active exception"). join() returns before those destructors run, so on Linux we poll
        /proc until the thread has really exited.
        """
        tid = self._thread.native_id
        task = f"/proc/self/task/{tid}"
        if tid is None or not os.path.isdir("/proc/self/task"):
            return
        deadline = time.monotonic() + timeout
        while os.path.exists(task) and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def waiting(self) -> int:
        """Foreground streams queued and not yet started (for back-pressure)."""
        with self._wake:
            return sum(s.gen is None for s in self._streams)

    @property
    def pending(self) -> int:
        return len(self._calls) + len(self._streams) + len(self._background)

    def _queue_of(self, stream: _Stream) -> collections.deque[_Stream]:
        return self._background if stream.background else self._streams

    # -- the thread -------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self.pending and not self._stopping:
                    self._wake.wait()
                if self._stopping and not self.pending:
                    return
                calls = list(self._calls)
                self._calls.clear()
                foreground, background = list(self._streams), list(self._background)
            for fn, fut in calls:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        fut.set_exception(exc)
            streams = foreground or [s for s in background if s.first] or background
            if not streams:
                continue
            try:
                self._round(streams)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any one round
                # A bug in scheduling, not a stream's own failure (those reach their consumer in
                # _advance): end this round's streams with it rather than the thread, whose end
                # would leave every later call waiting forever.
                log.exception("MLX worker round failed")
                self._fail(streams, exc)

    def _round(self, streams: list[_Stream]) -> None:
        active = sum(s.gen is not None for s in streams)
        spent_until: float | None = None  # when the prompt-chunk budget of this round ends
        background = streams[0].background
        for s in streams:
            if background and self._wanted():
                break  # the rest of this round waits: a turn's first token does not
            if s.cancelled.is_set():
                self._close(s)
            elif s.step is not None:
                continue
            elif not s.decoding and spent_until is not None and time.monotonic() > spent_until:
                continue  # next round: the decoding streams have waited long enough
            elif s.gen is None and active >= self.max_active:
                continue  # waits, in arrival order, for a started one to end
            else:
                active += s.gen is None
                chunk = not s.decoding
                self._advance(s, _NOTHING)
                if chunk and spent_until is None:
                    spent_until = time.monotonic() + PREFILL_BUDGET_S
        asking = [(s, s.step) for s in streams if s.step is not None and not s.done]
        self.decoding = len(asking)
        by_runner: dict[int, list[tuple[_Stream, Step]]] = {}
        for s, step in asking:
            by_runner.setdefault(id(step.runner), []).append((s, step))
        for group in by_runner.values():
            if background and self._wanted():
                break  # asked steps stay asked: answered in a later round
            try:
                results = group[0][1].runner.run_steps([step.payload for _, step in group])
            except BaseException as exc:  # noqa: BLE001 - the runner should isolate failures
                results = [exc] * len(group)
            for (s, _), result in zip(group, results, strict=True):
                s.step = None
                self._advance(s, result)
        self._remove_done(streams)

    def _wanted(self) -> bool:
        """Has foreground work (a stream, a one-shot call) arrived? A background round ends at
        the next piece of work then, instead of after all of them: a turn that arrives while
        upkeep and a warm-up share a round waits for one prompt chunk or one step, not for
        both (up to ~0.7 s measured on 2 cores)."""
        return bool(self._streams or self._calls)

    def _advance(self, s: _Stream, value: Any) -> None:
        """Run `s` to its next item: deliver it, or keep the Step it asks for."""
        try:
            if s.gen is None:
                s.gen = s.factory()
            if value is _NOTHING:
                item = next(s.gen)
            elif isinstance(value, BaseException):
                item = s.gen.throw(value)
            else:
                item = s.gen.send(value)
            if isinstance(item, Step):
                s.step, s.decoding = item, True
                return
            s.put(item)
            return
        except StopIteration:
            s.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            log.exception("MLX stream failed")
            s.put(exc)
        s.done = True

    def _close(self, s: _Stream) -> None:
        """A cancelled stream: run its generator's finally on this thread, then end it."""
        try:
            if s.gen is not None:
                s.gen.close()
        except BaseException:  # noqa: BLE001 - nobody is listening any more
            log.exception("MLX stream failed while closing")
        s.step, s.done = None, True
        s.put(_DONE)

    def _fail(self, streams: list[_Stream], exc: BaseException) -> None:
        for s in streams:
            if not s.done:
                with contextlib.suppress(BaseException):
                    if s.gen is not None:
                        s.gen.close()
                s.step, s.done = None, True
                s.put(exc)
        self._remove_done(streams)

    def _remove_done(self, streams: list[_Stream]) -> None:
        with self._wake:
            for s in streams:
                queue = self._queue_of(s)
                if s.done and s in queue:
                    queue.remove(s)
