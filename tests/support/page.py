"""Playwright helpers the browser tests share (the page under test is app/web/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # screenshots (gitignored)


def open_page(pg: Any, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("body[data-ready]")


def send(pg: Any, text: str, max_tokens: int) -> None:
    pg.fill("#max-tokens", str(max_tokens))
    pg.dispatch_event("#max-tokens", "change")
    pg.fill("#input", text)
    pg.press("#input", "Enter")


def wait_reply_stored(pg: Any, count: int) -> Any:
    """The `count`-th stored reply bubble (its id comes from the `done` event)."""
    pg.wait_for_function(
        "n => document.querySelectorAll('.msg-assistant[data-id]:not([data-id=\"\"])').length >= n"
        " && !document.querySelector('.msg.streaming')",
        arg=count,
    )
    return pg.locator('.msg-assistant[data-id]:not([data-id=""])').nth(count - 1)
