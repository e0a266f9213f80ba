"""Fixtures of the browser tests: one real server (real model, SQLite, Chroma) for the whole
package, Debian's chromium driven by Playwright, and a page that records its errors."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("MEMENTO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[3]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MAX_CHARS = 2_000  # a small message limit, so the page's error display can be provoked
TIMEOUT_MS = 180_000  # generation on a busy 2-core machine; never a timing assertion


@pytest.fixture(scope="session")
def sync_api() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install "
            "chromium; `make test` does it where root and apt exist) or set MEMENTO_CHROMIUM"
        )
    return pytest.importorskip("playwright.sync_api", reason="python playwright not installed")


@pytest.fixture(scope="session")
def server(sync_api: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from app.cli.local_server import LocalServer
    from app.config import Settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("web-data"),
        personas_dir=REPO / "personas",
        max_message_chars=MAX_CHARS,
        default_max_tokens=16,
        # one user for every page test: the default 120 requests/minute is soon spent by pages
        # that poll (limits have their own tests in tests/security/)
        rate_limit_per_minute=100_000,
    )
    local = LocalServer(settings)
    url = local.start()
    yield url
    local.stop()


@pytest.fixture(scope="session")
def max_chars() -> int:
    """The server's message size limit (small, so tests can exceed it)."""
    return MAX_CHARS


@pytest.fixture(scope="session")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=300) as client:
        yield client


@pytest.fixture(scope="session")
def browser(sync_api: Any) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class PageErrors(list[str]):
    """Uncaught exceptions and console errors of a page: a test ends with none."""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 860}, locale="ko-KR")
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors = PageErrors()
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: m.type == "error" and errors.append(m.text))
    pg.errors = errors
    yield pg
    context.close()
