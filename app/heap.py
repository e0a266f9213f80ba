"""Hand the heap memory that turns freed back to the OS now and then (glibc only).

Why: glibc's malloc keeps freed memory in its arenas (one per thread that allocates: the event
loop, the store's thread pool, the MLX worker, Chroma's threads) for reuse, and a turn makes
many short-lived allocations in whichever thread runs it, so the pages that hold only free
chunks stay resident. In the soak run (tests/faults/test_soak.py) that free-but-resident memory
grew from 39 to 66 MB over 1,200 turns and was most of the resident growth after warm-up.
`malloc_trim(0)` releases every whole free page of every arena (madvise); it takes a few
milliseconds, holding each arena's lock in turn, so it runs in a thread once a minute, and right
after a large read of the vector index (memory/vector_index.py), whose peak is the largest.

Arenas are capped at ARENA_MAX (`limit_arenas()`, at start-up). glibc makes one per thread that
allocates, up to 8 per core, and each keeps the high-water mark of what ran in it. A Chroma read
of a recall scope's vectors (5,850 records, ~65 MB of short-lived native allocations) run by
whichever `asyncio.to_thread` worker is free: 100 such reads in a loop took the process from
156 to 405-503 MB, 220-300 MB of it free in the arenas; with one arena 251-267 MB, trimmed after
each read 185-240 MB. Two arenas keep two threads from contending on one lock.

Elsewhere (macOS, musl) there is no malloc_trim and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

from app import periodic

log = logging.getLogger(__name__)

TRIM_EVERY_SECONDS = 60.0
ARENA_MAX = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def _libc_fn(symbol: str, *argtypes: type) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = getattr(ctypes.CDLL(name), symbol)
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int
    return fn


_trim = _libc_fn("malloc_trim", ctypes.c_size_t)
_mallopt = _libc_fn("mallopt", ctypes.c_int, ctypes.c_int)


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Let glibc create at most `arenas` malloc arenas from now on (threads that come later
    share them); False where that is not possible. Call it before the threads start: arenas
    made before stay."""
    if _mallopt is None or _trim is None:  # mallopt alone: musl has it, as a no-op
        return False
    return bool(_mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free heap pages to the OS; False where that is not possible."""
    if _trim is None:
        return False
    _trim(0)
    return True


class HeapTrimmer:
    """One task per running app: trim() every `every` seconds, in a thread."""

    def __init__(self, every: float = TRIM_EVERY_SECONDS) -> None:
        self.every = every
        self.trims = 0  # for tests and logs
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if _trim is not None:
            # a failed trim costs memory, never the server: logged, the next one on time
            run = periodic.every(
                lambda: self.every, self._trim_once, log, "could not trim the heap"
            )
            self._task = asyncio.create_task(run, name="heap-trim")

    async def _trim_once(self) -> None:
        await asyncio.to_thread(trim)
        self.trims += 1

    async def aclose(self) -> None:
        await periodic.stop(self._task)
        self._task = None
