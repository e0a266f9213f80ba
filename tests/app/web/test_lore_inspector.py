"""The lore on the page (real browser, real model): the Context tab shows the lore part, each
lorebook entry with why it fired (which key in which message); the Lore tab lists the books in
force, switches entries on and off, attaches a book and tests a message.

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


def test_the_lore_tab_browses_toggles_attaches_and_tests_a_message(
    page: Any, server: str, api: httpx.Client
) -> None:
    book = api.post("/v1/lorebooks", json={**BOOK, "name": "Ashvale tab"}).json()
    other = api.post(
        "/v1/lorebooks",
        json={
            "name": "Sea",
            "entries": [{"keys": ["바다"], "content": "The sea is grey.", "name": "Sea"}],
        },
    ).json()
    created = api.post("/v1/sessions", json={"persona": "pippa", "memory": {"strategy": "window"}})
    session_id = created.json()["id"]
    api.post(f"/v1/sessions/{session_id}/lore", json={"book": book["id"]})

    open_page(page, f"{server}/#{session_id}")
    page.click("#tab-lore")
    block = page.locator(f'.lore-book[data-book="{book["id"]}"]')
    block.wait_for()
    assert block.locator(".lore-entry").count() == 2
    # test a message: 용 fires Ember, with its reason
    page.fill("#lore-test-input", "용이 보고 싶어")
    page.click("#lore-test-run")
    result = page.locator("#lore-test-result .lore-why")
    result.wait_for()
    assert result.inner_text() == "key '용' in the new message"
    # switch Ember off: the server stores it, and the test no longer fires it
    ember = block.locator('.lore-entry[data-entry="0"] input[type="checkbox"]')
    ember.uncheck()
    stored = None
    for _ in range(50):
        stored = api.get(f"/v1/lorebooks/{book['id']}/entries/0").json()
        if stored.get("enabled") is False:  # absent until the PATCH lands
            break
        page.wait_for_timeout(100)
    assert stored is not None and stored.get("enabled") is False
    page.click("#lore-test-run")
    page.locator("#lore-test-result .empty-note").wait_for()
    # edit the Moon entry's keys and text: stored, and the test now fires it on the new key
    moon = block.locator('.lore-entry[data-entry="1"]')
    moon.locator(".lore-edit").click()
    moon.locator(".lore-edit-keys").fill("moon, 달")
    moon.locator(".lore-edit-content").fill("The moon here is green, 달은 초록색이야.")
    moon.locator(".lore-edit-save").click()
    for _ in range(50):
        stored = api.get(f"/v1/lorebooks/{book['id']}/entries/1").json()
        if stored["keys"] == ["moon", "달"]:
            break
        page.wait_for_timeout(100)
    assert stored["keys"] == ["moon", "달"] and "초록색" in stored["content"]
    assert stored["name"] == "Moon"  # the fields not edited are kept
    # the tab is drawn again from the server (which also clears the test box)
    block.locator('.lore-entry[data-entry="1"] .part-msg-text:has-text("초록색")').wait_for()
    page.fill("#lore-test-input", "달이 떴어")
    page.click("#lore-test-run")
    page.locator("#lore-test-result .lore-why").wait_for()
    assert page.locator("#lore-test-result .lore-why").inner_text() == (
        "key '달' in the new message"
    )
    # attach the other book from the list
    page.select_option("#lore-attach-select", other["id"])
    page.click("#lore-attach button")
    page.locator(f'.lore-book[data-book="{other["id"]}"]').wait_for()
    books = api.get(f"/v1/sessions/{session_id}/lore").json()["books"]
    assert [b["id"] for b in books] == [book["id"], other["id"]]
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#inspector-body").screenshot(path=str(ARTIFACTS / "page-lore-tab.png"))
