"""The Memory tab keeps what the user wrote (issue 15), in a real browser on a real server:
edit the summary, forget a recalled turn it covers (the tab's own forget button), and the tab
still shows the edited summary with a notice saying it was kept; the summary's previous version
restores with one click; an unpinned fact can be pinned again. Screenshot in tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.page import ARTIFACTS, open_page
from support.server import wait_until

pytestmark = pytest.mark.slow  # a real model, a real server and a real browser

MEMORY = {
    "strategy": "hybrid",
    "summarizer": "extractive",
    "buffer_tokens": 64,
    "summary_chunk_tokens": 32,
}


def test_forget_keeps_the_edited_summary_and_versions_restore(
    page: Any, server: str, api: httpx.Client
) -> None:
    pg = page
    sid = api.post("/v1/sessions", json={"persona": "assistant", "memory": MEMORY}).json()["id"]
    history = [
        {"role": ("user", "assistant")[i % 2], "content": f"Day {i}: we walked the dog Bori."}
        for i in range(12)
    ]
    ids = api.post(f"/v1/sessions/{sid}/history", json={"messages": history}).json()["ids"]

    def ready() -> dict[str, Any] | None:
        m = api.get(f"/v1/sessions/{sid}/memory").json()
        covered = ids[0] in m["summary_covers"]
        return m if covered and not m["indexing"] and len(m["items"]) == len(ids) else None

    auto = wait_until(ready, "the summary and the index to take the import")
    open_page(pg, f"{server}/#{sid}")
    pg.click("#tab-memory")
    pg.wait_for_selector("#memory-summary")
    assert pg.input_value("#memory-summary") == auto["summary"]

    mine = "Bori is our dog; we walk him every day."
    pg.fill("#memory-summary", mine)
    pg.click("#memory-summary-save")
    pg.wait_for_selector("#memory-summary-yours")
    # forget the first turn, which the summary covers, from the tab's list of memories
    item = pg.locator("#memory-items li.part-msg").filter(
        has=pg.locator(f'span.muted:text-is("#{ids[0]}")')
    )
    item.locator('button:has-text("forget")').click()
    pg.wait_for_selector("#memory-notice")
    assert "kept as you wrote it" in pg.inner_text("#memory-notice")
    assert pg.input_value("#memory-summary") == mine  # before issue 15: emptied
    assert api.get(f"/v1/sessions/{sid}/memory").json()["summary"] == mine
    pg.locator("#memory-summary-block").screenshot(
        path=str(ARTIFACTS / "memory-forget-keeps-edit.png")
    )

    # the previous version (the summarizer's) restores with one click; the edit is kept
    versions = pg.locator("#memory-summary-versions")
    assert versions.get_attribute("open") is not None  # opened by the notice
    versions.locator('li[data-version="0"] button:has-text("Restore")').click()
    pg.wait_for_function(
        "t => document.querySelector('#memory-summary').value === t", arg=auto["summary"]
    )
    assert mine in (pg.text_content("#memory-summary-versions") or "")
    assert pg.locator("#memory-notice").count() == 0  # the restore answered it

    # a pinned fact removed by mistake comes back
    api.patch(f"/v1/sessions/{sid}/memory", json={"pinned": [{"text": "Bori is a jindo."}]})
    fact = next(
        p for p in api.get(f"/v1/sessions/{sid}/memory").json()["pinned"] if p["source"] == "user"
    )
    assert api.delete(f"/v1/sessions/{sid}/memory/pinned/{fact['id']}").status_code == 204
    pg.reload()  # the same URL: goto would only move the hash
    pg.wait_for_selector("body[data-ready]")
    pg.click("#tab-memory")
    pg.click("#pinned-removed summary")
    pg.click('#pinned-removed button:has-text("Pin again")')
    pg.wait_for_function(
        "() => [...document.querySelectorAll('#pinned-list input')]"
        ".some((i) => i.value === 'Bori is a jindo.')"
    )
    assert pg.errors == []
