"""Leases on replies in flight: this instance renews its pending replies' leases and sweeps
replies whose lease ran out (their instance died), so that no reply stays `pending` forever and
no live instance's reply is ever taken for abandoned.

One task per running app, whatever the number of replies: every third of a lease it renews
(one UPDATE of this instance's pending rows) and sweeps (one UPDATE of expired ones, through
the (status, lease_until) index). A replica that died is cleaned up by the others within about
a lease and a third, without anyone restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.store.repo import Store

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._task: asyncio.Task[None] | None = None

    @property
    def period(self) -> float:
        return self.store.lease_seconds / 3

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reply-leases")

    async def tick(self) -> int:
        """Renew ours, sweep the abandoned; the number swept."""
        await asyncio.to_thread(self.store.renew_leases)
        swept = await asyncio.to_thread(self.store.recover_pending)
        if swept:
            log.info("marked %d reply(ies) whose instance stopped renewing as interrupted", swept)
        return swept

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - a database outage must not end the renewals
                log.warning("could not renew reply leases; retrying", exc_info=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
