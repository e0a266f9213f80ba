"""A finished reply the database refused for its environment's sake (a full disk, a database
that went away) is not dropped: it is written again in the background until it lands, so the
reply does not stay `pending` and what the user saw streamed is kept once space returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.store.faults import store_fault

log = logging.getLogger(__name__)
T = TypeVar("T")


async def write_when_possible(
    write: Callable[[], Awaitable[T]],
    what: str,
    then: Callable[[T], Awaitable[None] | None] | None = None,
    every: float = 2.0,
    attempts: int = 900,
) -> bool:
    """Retry `write` (awaited: its database call goes through AsyncStore, in a thread) every
    `every` seconds while the database's environment refuses it, `attempts` times at most (30 min
    by default); then `then(result)`. Whether it was written."""
    for _ in range(attempts):
        await asyncio.sleep(every)
        try:
            result = await write()
        except Exception as exc:  # noqa: BLE001 - classified below
            if store_fault(exc) is None:
                log.exception("gave up writing %s", what)
                return False
            continue
        log.info("%s written after the database came back", what)
        if then is not None:
            done = then(result)
            if done is not None:
                await done
        return True
    log.error("gave up writing %s: the database refused it for %d attempts", what, attempts)
    return False
