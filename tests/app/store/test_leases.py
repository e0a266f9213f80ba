"""Leases on pending replies (issue 15): recovery, at start-up or by any replica, takes only
replies whose instance stopped renewing them; a live instance's replies are never touched.
Real SQLite and PostgreSQL (conftest), two Store objects being two running instances; the
LeaseKeeper that renews and sweeps on a running app times its renewals."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.config import Settings
from app.leases import LeaseKeeper
from app.service.store import AsyncStore
from app.store.models import Message
from app.store.repo import Store


def _pending_reply(store: Store) -> tuple[str, str, int]:
    uid = store.get_or_create_user("alice").id
    sid = store.create_session(uid, "pippa", "hybrid", {}).id
    store.add_message(uid, sid, "user", "tell me a long story", 5)
    reply = store.add_message(uid, sid, "assistant", "", status="pending")
    return uid, sid, reply.id


def _later(store: Store, leases: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=store.lease_seconds * leases)


def test_a_second_instance_leaves_a_live_reply_alone(make_store: Callable[[], Store]) -> None:
    live, second = make_store(), make_store()
    assert live.owner != second.owner
    uid, sid, reply_id = _pending_reply(live)
    live.save_partial_reply(uid, sid, reply_id, "Once upon a time", 4)
    # the second process starts (recovery) while the first is generating: nothing flips
    assert second.recover_pending() == 0
    # the live one keeps renewing, so even long after the reply started it is still its own
    for _ in range(3):
        assert live.renew_leases() == 1
    assert second.recover_pending() == 0
    got = second.get_message(uid, sid, reply_id)
    assert (got.status, got.content) == ("pending", "Once upon a time")
    # the owner finishes it: complete, and no renewal touches it again
    live.update_message(uid, sid, reply_id, content="Once upon a time, the end.", status="complete")
    assert live.renew_leases() == 0
    assert second.recover_pending(now=_later(live, 10)) == 0
    assert second.get_message(uid, sid, reply_id).status == "complete"


def test_an_abandoned_reply_is_recovered_once_its_lease_runs_out(
    make_store: Callable[[], Store],
) -> None:
    dead, survivor = make_store(), make_store()
    uid, sid, reply_id = _pending_reply(dead)
    dead.save_partial_reply(uid, sid, reply_id, "Once upon", 2)
    # `dead` stops renewing (kill -9): before the lease ends nothing, after it the reply is
    # interrupted with its last checkpoint, by any instance, without a restart
    assert survivor.recover_pending(now=_later(dead, 0.5)) == 0
    assert survivor.recover_pending(now=_later(dead, 1.1)) == 1
    got = survivor.get_message(uid, sid, reply_id)
    assert (got.status, got.content, got.tokens) == ("interrupted", "Once upon", 2)
    assert survivor.recover_pending(now=_later(dead, 10)) == 0  # once


def test_an_instance_never_sweeps_its_own_replies(make_store: Callable[[], Store]) -> None:
    # its own replies are settled by its turns (complete, error or interrupted on shutdown);
    # a lease of its own that looks expired means a renewal was late, not that it died
    store = make_store()
    uid, sid, reply_id = _pending_reply(store)
    assert store.recover_pending(now=_later(store, 10)) == 0
    assert store.get_message(uid, sid, reply_id).status == "pending"


def test_a_pending_row_without_a_lease_counts_as_abandoned(
    make_store: Callable[[], Store],
) -> None:
    # rows written before schema v6 (or imported) have no owner and no lease
    old, new = make_store(), make_store()
    uid, sid, reply_id = _pending_reply(old)
    with old._tx() as db:
        db.execute(update(Message).values(owner=None, lease_until=None))
    assert new.recover_pending() == 1
    assert new.get_message(uid, sid, reply_id).status == "interrupted"


def test_an_instance_alone_on_its_database_takes_every_dead_reply_at_once(
    make_store: Callable[[], Store],
) -> None:
    # the embedded default under a locked data directory: no other instance can be live, so a
    # restart after kill -9 need not wait for the dead process's lease
    dead, restarted = make_store(), make_store()
    uid, sid, reply_id = _pending_reply(dead)
    assert restarted.recover_pending() == 0  # a replica could not know
    assert restarted.recover_pending(alone=True) == 1
    assert restarted.get_message(uid, sid, reply_id).status == "interrupted"


def test_the_default_lease_sweeps_a_killed_instance_within_the_target() -> None:
    # issue 15: a killed instance's reply is `interrupted` within 10 s. Its last renewal was at
    # most a period before the kill, the lease runs out at most a lease after it, and the next
    # sweep of a live replica comes at most a period (a third of its lease) later.
    lease = Settings.model_fields["reply_lease_seconds"].default
    assert lease + lease / 3 <= 10 - 1  # a second to spare for a sweep that comes late
    assert Store.__init__.__kwdefaults__["lease_seconds"] == lease


async def test_a_late_renewal_is_measured_and_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = LeaseKeeper(AsyncStore(store))
    keeper._renewed_at = time.monotonic() - keeper.period  # on time: nothing said
    await keeper.tick()
    assert keeper.worst_gap >= keeper.period
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    keeper._renewed_at = time.monotonic() - 2.5 * keeper.period  # a starved machine
    with caplog.at_level(logging.WARNING, logger="app.leases"):
        await keeper.tick()
    assert keeper.worst_gap >= 2.5 * keeper.period
    assert "raise MEMENTO_REPLY_LEASE_SECONDS" in caplog.text


def test_a_live_reply_swept_after_a_late_renewal_still_ends_complete(
    make_store: Callable[[], Store],
) -> None:
    # the cost of a renewal later than the lease (a database outage longer than the margin):
    # another replica marks the live reply interrupted meanwhile, its owner still stores it
    live, other = make_store(), make_store()
    uid, sid, reply_id = _pending_reply(live)
    assert other.recover_pending(now=_later(live, 2)) == 1
    assert not live.save_partial_reply(uid, sid, reply_id, "Once upon", 2)  # a no-op now
    live.update_message(uid, sid, reply_id, content="Once upon a time.", status="complete")
    got = other.get_message(uid, sid, reply_id)
    assert (got.status, got.content) == ("complete", "Once upon a time.")
