"""The Context tab shows the lore part (real browser, real model): each lorebook entry that
fired with why it fired (which key in which message), after the persona's head.

Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.page import ARTIFACTS, open_page, send, wait_reply_stored

pytestmark = pytest.mark.slow  # a real model, a real server and a real browser

BOOK = {
    "name": "Ashvale",
    "entries": [
        {"keys": ["용"], "content": "Ember is the red dragon of Ashvale.", "name": "Ember"},
        {"keys": ["moon"], "content": "The moon here is green.", "name": "Moon"},
    ],
}


def test_the_context_tab_lists_lore_entries_with_their_reasons(
    page: Any, server: str, api: httpx.Client
) -> None:
    book = api.post("/v1/lorebooks", json=BOOK)
    assert book.status_code == 201, book.text
    created = api.post("/v1/sessions", json={"persona": "pippa", "memory": {"strategy": "window"}})
    session_id = created.json()["id"]
    r = api.post(f"/v1/sessions/{session_id}/lore", json={"book": book.json()["id"]})
    assert r.status_code == 201, r.text

    open_page(page, f"{server}/#{session_id}")
    send(page, "용한테 인사해 줘", max_tokens=4)
    reply_id = wait_reply_stored(page, 1).get_attribute("data-id")
    ctx = api.get(f"/v1/sessions/{session_id}/context/{reply_id}").json()
    lore = next(p for p in ctx["parts"] if p["kind"] == "lore")

    part = page.locator('#context-view .ctx-part[data-kind="lore"]')
    part.wait_for()
    assert part.locator(".part-kind").inner_text() == "Lore (World Info)"
    assert part.locator(".part-tokens").inner_text() == f"{lore['tokens']:,} tok"
    assert part.locator("summary .muted").inner_text() == "1 entry"
    part.locator("summary").click()
    entry = part.locator(".part-msg")
    assert entry.count() == 1
    assert entry.locator(".lore-why").inner_text() == "key '용' in the new message"
    assert "red dragon" in entry.locator(".part-msg-text").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#inspector-body").screenshot(path=str(ARTIFACTS / "page-context-lore.png"))
