"""The one thread that owns all MLX work.

MLX streams belong to the thread that created them (mlx 0.31+ raises otherwise), so the model,
its KV caches and the embedding model all live on this thread. One-shot calls (`run`) and
generators (`iterate`) share it; active generators are stepped round-robin, one item each per
round, so many sessions streaming at once progress fairly and a cancelled stream stops at its
next step. Background generators (memory upkeep) only step when no foreground one is waiting.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_DONE = object()


@dataclass
class _Stream:
    factory: Callable[[], Iterator[Any]]
    deliver: Callable[[Any], None]  # thread-safe: puts an item (or _DONE / an exception) out
    background: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    gen: Iterator[Any] | None = None


class MLXWorker:
    def __init__(self, name: str = "mlx") -> None:
        self._calls: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            collections.deque()
        )
        self._streams: collections.deque[_Stream] = collections.deque()
        self._background: collections.deque[_Stream] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
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
        self, factory: Callable[[], Iterator[T]], background: bool = False
    ) -> AsyncIterator[T]:
        """Run a generator on the worker thread and yield its items here.

        Leaving the `async for` early (or the task being cancelled) cancels the generator before
        its next step and closes it on the worker thread.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def deliver(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        stream = _Stream(factory=factory, deliver=deliver, background=background)
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
                call = self._calls.popleft() if self._calls else None
                queue = self._streams or self._background
                stream = queue.popleft() if queue else None
            if call is not None:
                fn, fut = call
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        fut.set_exception(exc)
            if stream is not None and self._step(stream):
                with self._wake:
                    self._queue_of(stream).append(stream)

    def _step(self, s: _Stream) -> bool:
        """Advance one stream by one item; True while it has more to give."""
        try:
            if s.gen is None:
                s.gen = s.factory()
            if s.cancelled.is_set():
                s.gen.close()  # runs the generator's finally on this thread
                s.deliver(_DONE)
                return False
            s.deliver(next(s.gen))
            return True
        except StopIteration:
            s.deliver(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            log.exception("MLX stream failed")
            s.deliver(exc)
        return False
