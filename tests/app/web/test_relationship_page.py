"""Memory across sessions in the page (real browser, real server and model): a new chat with
Pippa opens with her returning greeting, the Memory tab shows what she knows of you from the
earlier chat and takes a fact to remember always, and the inspector shows the relationship part
and tags the turns recalled from the earlier chat.

Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.page import ARTIFACTS, open_page, send, wait_reply_stored
from support.server import wait_until

pytestmark = pytest.mark.slow  # a real model, a real server and a real browser

EARLIER = [
    ("user", "My cat is called Jimmi and she sleeps on my keyboard."),
    ("assistant", "Jimmi sounds adorable!"),
    ("user", "Next month I am flying to Lisbon for a writing workshop."),
    ("assistant", "Lisbon! Bring me a story."),
]


def test_a_new_chat_knows_the_earlier_one(page: Any, server: str, api: httpx.Client) -> None:
    pg = page
    memory = {"strategy": "vector", "buffer_tokens": 0}
    first = api.post("/v1/sessions", json={"persona": "pippa", "memory": memory}).json()["id"]
    r = api.post(
        f"/v1/sessions/{first}/history",
        json={"messages": [{"role": ro, "content": c} for ro, c in EARLIER]},
    )
    assert r.status_code == 201, r.text
    # the earlier chat is in the index before the new one opens, as it is for a user who comes
    # back another day (its first minutes of background embedding are not what this tests)
    told = set(r.json()["ids"])
    wait_until(
        lambda: told <= {i["id"] for i in api.get(f"/v1/sessions/{first}/memory").json()["items"]},
        "the earlier chat to be indexed",
    )
    created = api.post("/v1/sessions", json={"persona": "pippa", "memory": memory})
    assert created.status_code == 201, created.text
    new = created.json()
    open_page(pg, f"{server}/#{new['id']}")
    greeting = pg.locator(".msg-assistant").first
    assert greeting.inner_text().startswith(new["greeting"][:10])
    assert new["greeting"] != api.get("/v1/personas/pippa").json()["greeting"]

    pg.click("#tab-memory")
    block = pg.wait_for_selector("#memory-relationship")
    assert "Jimmi" in block.inner_text()  # the earlier chat's gist
    pg.fill("#remember-always", "아빠 takes his coffee black.")
    pg.click("#remember-always-add")
    pg.wait_for_function(
        "() => document.querySelector('#memory-relationship').innerText.includes('coffee black')"
    )
    facts = api.get("/v1/relationships/pippa").json()["facts"]
    assert any(f["text"] == "아빠 takes his coffee black." and f["session_id"] == new["id"]
               for f in facts)  # fmt: skip

    send(pg, "What is my cat called?", max_tokens=12)
    wait_reply_stored(pg, 1).locator("button.inspect").click()
    pg.wait_for_selector('.ctx-part[data-kind="relationship"]')
    # a session's first finds: the best nearest the question, the rest in the kept slot
    earlier, text = 0, ""
    for kind in ("kept", "recalled"):
        recalled = pg.locator(f'.ctx-part[data-kind="{kind}"]')
        if recalled.count():
            recalled.locator("summary").click()
            earlier += recalled.locator(".tag-earlier").count()
            # text_content, not inner_text: a re-draw of the inspector after the click (the
            # turn's memory and session list refresh) may close the part again, hiding its text
            text += recalled.text_content() or ""
    assert earlier >= 1 and "Jimmi" in text
    relationship = pg.locator('.ctx-part[data-kind="relationship"]')
    relationship.locator("summary").click()
    assert "coffee black" in (relationship.text_content() or "")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "relationship.png"), full_page=True)
    assert not pg.errors, pg.errors
