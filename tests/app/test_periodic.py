"""app/periodic.py: a job runs again after it fails, and stops when its task is stopped."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app import periodic


async def test_a_failing_job_is_logged_and_runs_again_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)
        raise RuntimeError("database away")

    log = logging.getLogger("test.periodic")
    with caplog.at_level(logging.WARNING, logger="test.periodic"):
        task = asyncio.create_task(periodic.every(lambda: 0.01, job, log, "job failed"))
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        await periodic.stop(task)
    done = len(runs)
    await asyncio.sleep(0.05)
    assert len(runs) == done >= 3 and task.cancelled()
    assert caplog.text.count("job failed") >= 3 and "database away" in caplog.text
    await periodic.stop(None)  # nothing started: nothing to stop
