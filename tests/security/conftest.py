"""The shared auth-required server, and the `fuzz` / `crash` markers (long runs, opt-in).

`make fuzz` / `make crash` select them with `-m fuzz` / `-m crash`; otherwise they are skipped,
so `make test` (which selects by `slow`) never pays for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import LiveServer, make_settings

OPT_IN = {"fuzz": "the long schemathesis run", "crash": "the 20-round kill -9 loop"}


def pytest_configure(config: pytest.Config) -> None:
    for name, what in OPT_IN.items():
        config.addinivalue_line("markers", f"{name}: {what} (opt-in: pytest -m {name})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = config.getoption("markexpr") or ""
    for item in items:
        for name in OPT_IN:
            if item.get_closest_marker(name) and name not in selected:
                item.add_marker(pytest.mark.skip(reason=f"opt-in: run with -m {name}"))


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
