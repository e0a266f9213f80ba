"""Heap trimming (issue 15, the soak run's resident growth): freed heap pages go back to the OS
once a minute, in a thread, for as long as the app runs; nothing happens where glibc is not."""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path

import pytest

from app import heap

GLIBC = heap._trim is not None


def rss_kb() -> int:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not GLIBC or not Path("/proc").exists(), reason="glibc on Linux only")
def test_trim_returns_freed_heap_pages_to_the_os() -> None:
    # 64 MB in small blocks (below the mmap threshold, so on the heap), then all freed but
    # the last: the free pages stay resident until trimmed
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(1024)]
    for p in blocks:
        ctypes.memset(p, 1, 64 * 1024)
    for p in blocks[:-1]:
        libc.free(p)
    before = rss_kb()
    assert heap.trim()
    assert before - rss_kb() > 32 * 1024
    libc.free(blocks[-1])


async def test_the_trimmer_runs_until_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(heap, "_trim", lambda pad: calls.append(pad) or 1)
    trimmer = heap.HeapTrimmer(every=0.01)
    trimmer.start()
    while trimmer.trims < 3:
        await asyncio.sleep(0.01)
    await trimmer.aclose()
    done = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == done >= 3 and set(calls) == {0}


async def test_nothing_runs_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_trim", None)
    trimmer = heap.HeapTrimmer(every=0.01)
    trimmer.start()
    assert trimmer._task is None and not heap.trim()
    await trimmer.aclose()
