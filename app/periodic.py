"""A job run every so often in a task of its own for the life of the app (reply leases, heap
trimming): one loop and one way to stop it, so that neither can end the loop by failing once
nor leave a task behind at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def every(
    seconds: Callable[[], float],
    job: Callable[[], Awaitable[object]],
    log: logging.Logger,
    failed: str,
) -> None:
    """Run `job` every `seconds()` until cancelled. A failed run is logged with `failed` (on the
    caller's logger) and the next one comes on time."""
    while True:
        await asyncio.sleep(seconds())
        try:
            await job()
        except Exception:  # noqa: BLE001 - one failure must not end the runs
            log.warning(failed, exc_info=True)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel a task started with `every` and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
