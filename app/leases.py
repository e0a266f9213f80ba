"""Leases on replies in flight: this instance renews its pending replies' leases and sweeps
replies whose lease ran out (their instance died), so that no reply stays `pending` forever and
no live instance's reply is ever taken for abandoned.

One task per running app, whatever the number of replies: every third of a lease it renews
(one UPDATE of this instance's pending rows) and sweeps (one UPDATE of expired ones, through
the (status, lease_until) index). A replica that died is cleaned up by the others within a
lease and a third of its death (8 s with the default 6 s lease), without anyone restarting.

Renewals are timed: on a starved machine (event loop or thread pool busy) they come late, and
a renewal later than a whole period eats into the margin before other replicas may sweep this
instance's live replies, so it is logged with the advice to lengthen the lease.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app import periodic
from app.service.store import AsyncStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._task: asyncio.Task[None] | None = None
        self._renewed_at: float | None = None  # monotonic time of the last renewal
        self.worst_gap = 0.0  # the longest time between two renewals so far, seconds

    @property
    def period(self) -> float:
        return self.store.sync.lease_seconds / 3

    def start(self) -> None:
        self._renewed_at = time.monotonic()
        # a database outage must not end the renewals: a failed tick is logged and retried
        run = periodic.every(
            lambda: self.period, self.tick, log, "could not renew reply leases; retrying"
        )
        self._task = asyncio.create_task(run, name="reply-leases")

    async def tick(self) -> int:
        """Renew ours, sweep the abandoned; the number swept."""
        await self.store.renew_leases()
        self._note_renewal(time.monotonic())
        swept = await self.store.recover_pending()
        if swept:
            log.info("marked %d reply(ies) whose instance stopped renewing as interrupted", swept)
        return swept

    def _note_renewal(self, now: float) -> None:
        if self._renewed_at is not None:
            gap = now - self._renewed_at
            self.worst_gap = max(self.worst_gap, gap)
            if gap > 2 * self.period:
                log.warning(
                    "reply leases renewed %.1f s apart (lease %.1f s, renewed every %.1f s): "
                    "the machine is starved; if this recurs, raise MEMENTO_REPLY_LEASE_SECONDS "
                    "so that other replicas never take live replies for abandoned",
                    gap,
                    self.store.sync.lease_seconds,
                    self.period,
                )
        self._renewed_at = now

    async def aclose(self) -> None:
        await periodic.stop(self._task)
        self._task = None
