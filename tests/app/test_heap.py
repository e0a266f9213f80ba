"""Heap trimming (issue 15, the soak run's resident growth): freed heap pages go back to the OS
once a minute, in a thread, for as long as the app runs, and threads share at most ARENA_MAX
malloc arenas; nothing happens where glibc is not."""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import sys
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


# Eight threads allocating at once, then the arenas counted in malloc_info's report; in a
# process of its own: an arena, once made, stays for the life of the process.
ARENAS_OF_THREADS = """
import ctypes, os, sys, tempfile, threading
from app import heap
if sys.argv[1] == "limit":
    assert heap.limit_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
together = threading.Barrier(8)
def work():
    together.wait()  # all alive at once: none can take over an arena another left
    libc.malloc(1024)
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
path = os.path.join(tempfile.mkdtemp(), "info.xml")
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
print(open(path).read().count("<heap nr="))
"""


def arenas_after_threads(limit: bool) -> int:
    run = subprocess.run(
        [sys.executable, "-c", ARENAS_OF_THREADS, "limit" if limit else "default"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(heap.__file__).resolve().parents[1])},
    )
    return int(run.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_threads_share_at_most_arena_max_arenas() -> None:
    # glibc's default gives each allocating thread its own arena (up to 8 per core), each
    # keeping the high-water mark of what ran in it; the server caps them at start-up
    assert arenas_after_threads(limit=False) > heap.ARENA_MAX
    assert arenas_after_threads(limit=True) <= heap.ARENA_MAX


def test_no_arena_limit_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_mallopt", None)
    assert not heap.limit_arenas()


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
