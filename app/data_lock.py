"""One server per data directory: an OS lock on `<data_dir>/memento.lock`, held for the life of
the process, whose file says who holds it (pid, URL, when it started).

The embedded SQLite database and Chroma index are one process's: a second `memento serve` (or
an in-process `memento chat`, or `memento reindex`) on the same directory would run start-up
recovery on a live server's data and share an embedded index. It asks here first, before the
model loads, and refuses naming the holder. `fcntl.flock` locks belong to the open file, so the
OS releases them when the holder dies, even by kill -9: there is no stale lock to clean up.
Within one process the lock is re-entrant (the CLI takes it before uvicorn starts, the app's
lifespan takes it again; tests run several apps in one process).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.config import Settings

LOCK_FILE = "memento.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory; `holder` is what its lock file says."""

    def __init__(self, data_dir: Path, holder: dict[str, Any]) -> None:
        self.data_dir, self.holder = data_dir, holder
        super().__init__(f"the data directory {data_dir} is in use by {describe(holder)}")


def describe(holder: dict[str, Any]) -> str:
    pid = holder.get("pid", "?")
    where = holder.get("url") or "no HTTP address yet"
    since = holder.get("started_at")
    return f"Memento pid {pid} on {where}" + (f" (since {since})" if since else "")


def needs_lock(settings: Settings) -> bool:
    """The data directory holds state of this process alone: the embedded SQLite database or
    the embedded Chroma index. With PostgreSQL and a Chroma server, replicas share nothing
    local and may start side by side (leases keep their replies apart)."""
    return settings.database_url is None or settings.chroma_url is None


@dataclass
class _Held:
    file: TextIO
    count: int
    info: dict[str, Any]


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


class DataDirLock:
    """A hold on one data directory; release() once per acquire()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._released = False

    def describe_self(self, **info: Any) -> None:
        """Add to what the lock file says (the URL once the port is known)."""
        with _guard:
            held = _held[self.path]
            held.info.update({k: v for k, v in info.items() if v is not None})
            _write(held.file, held.info)

    def release(self) -> None:
        with _guard:
            if self._released:
                return
            self._released = True
            held = _held[self.path]
            held.count -= 1
            if held.count == 0:
                del _held[self.path]
                # unlock by closing; the file stays (deleting it would race a new holder)
                held.file.close()


def _write(file: TextIO, info: dict[str, Any]) -> None:
    file.seek(0)
    file.truncate()
    file.write(json.dumps(info))
    file.flush()


def _read_holder(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text() or "{}")
        if isinstance(data, dict):
            return data
    return {}


def acquire(data_dir: Path, **info: Any) -> DataDirLock:
    """Hold `data_dir` for this process, or DataDirBusy naming the process that does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = (data_dir / LOCK_FILE).resolve()
    with _guard:
        held = _held.get(path)
        if held is not None:
            held.count += 1
            return DataDirLock(path)
        file = path.open("a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise DataDirBusy(data_dir, _read_holder(path)) from None
        except BaseException:
            file.close()
            raise
        record = {
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **{k: v for k, v in info.items() if v is not None},
        }
        _write(file, record)
        _held[path] = _Held(file, 1, record)
        return DataDirLock(path)


def holder(data_dir: Path) -> dict[str, Any] | None:
    """What the lock file says if another process holds `data_dir` now, else None (free, or
    held by this process)."""
    path = (data_dir / LOCK_FILE).resolve()
    if not path.exists():
        return None
    with _guard:
        if path in _held:
            return None
    try:
        lock = acquire(data_dir)
    except DataDirBusy as busy:
        return busy.holder
    lock.release()
    return None
