"""The shared auth-required server. The `fuzz` / `crash` runs are opt-in markers
(tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import LiveServer, make_settings


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("security-data")
    settings = make_settings(
        data,
        auth="required",
        max_message_chars=4000,
        max_body_bytes=200_000,
        max_history_import=40,
        max_tokens_limit=64,
        default_max_tokens=8,
        max_persona_bytes=8000,
        # generous by default: the rate-limit tests lower them on the live settings
        rate_limit_per_minute=100_000,
        max_concurrent_per_user=50,
        session_wait_seconds=60,
    )
    live = LiveServer(settings, graceful_timeout=5).start()
    yield live
    live.stop()
