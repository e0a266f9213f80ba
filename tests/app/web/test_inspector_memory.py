"""The memory inspector against a real server and real memory (real browser, real model): unsaved
edits in the Memory tab survive its re-draws (after a reply, after a save) and say so when the
stored value changed underneath them; a hybrid session's Context lists the recalled turns after
the recent buffer, each with a working forget button.

Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from support.page import ARTIFACTS, open_page, send, wait_reply_stored
from support.server import wait_until

pytestmark = pytest.mark.slow  # a real model, a real server and a real browser


def mark_memory_tab(pg: Any) -> None:
    """Mark the drawn Memory tab, so a test can wait for its next re-draw."""
    pg.eval_on_selector("#memory-summary-block", "el => el.dataset.old = '1'")


def wait_memory_redrawn(pg: Any) -> None:
    pg.wait_for_selector("#memory-summary-block:not([data-old])")


def new_session(api: httpx.Client, persona: str, memory: dict[str, Any]) -> str:
    created = api.post("/v1/sessions", json={"persona": persona, "memory": memory})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def stored_memory(api: httpx.Client, session_id: str) -> dict[str, Any]:
    r = api.get(f"/v1/sessions/{session_id}/memory")
    assert r.status_code == 200, r.text
    return r.json()


def user_pins(memory: dict[str, Any]) -> list[str]:
    return [f["text"] for f in memory["pinned"] if f["source"] == "user"]


def test_unsaved_memory_edits_survive_a_reply_and_save_as_typed(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    session_id = new_session(api, "cody", {"strategy": "window"})
    r = api.patch(f"/v1/sessions/{session_id}/memory", json={"pinned": [{"text": "Likes tea"}]})
    assert r.status_code == 200, r.text
    open_page(pg, f"{server}/#{session_id}")
    pg.click("#tab-memory")
    pg.wait_for_selector("#memory-summary")
    assert pg.is_hidden("#memory-summary-block .tag-unsaved")

    # unsaved: a summary typed, a pinned fact edited, a new one typed but not added yet
    first = "아빠 hikes every Sunday."
    pg.click("#memory-summary")
    pg.keyboard.type(first)
    pg.fill("#pinned-list input", "Likes green tea")
    pg.fill('input[aria-label="New pinned fact"]', "Has a cat named Miso")
    assert pg.is_visible("#memory-summary-block .tag-unsaved")
    assert pg.is_visible("#memory-pinned-block .tag-unsaved")

    # a reply arrives (the tab is drawn again) while the user goes on typing in the summary
    mark_memory_tab(pg)
    send(pg, "Hi Cody, what is a closure?", max_tokens=24)
    more = " He likes 김치 too."
    pg.focus("#memory-summary")
    pg.press("#memory-summary", "Control+End")
    pg.keyboard.type(more)
    wait_reply_stored(pg, 1)
    wait_memory_redrawn(pg)
    typed = first + more
    assert pg.input_value("#memory-summary") == typed
    # still typing where they were: the field has the focus and the caret is at the end
    focus = pg.evaluate(
        "() => { const el = document.activeElement;"
        " return {id: el.id, caret: el.selectionStart, length: el.value.length}; }"
    )
    assert focus == {"id": "memory-summary", "caret": len(typed), "length": len(typed)}
    assert pg.eval_on_selector_all("#pinned-list input", "els => els.map(e => e.value)") == [
        "Likes green tea"
    ]
    assert pg.input_value('input[aria-label="New pinned fact"]') == "Has a cat named Miso"
    assert stored_memory(api, session_id)["summary"] == ""  # nothing saved by a re-draw

    # save: exactly what was typed is stored; the summary is no longer marked unsaved
    mark_memory_tab(pg)
    pg.click("#memory-summary-save")
    wait_memory_redrawn(pg)
    assert stored_memory(api, session_id)["summary"] == typed
    assert pg.input_value("#memory-summary") == typed
    assert pg.is_hidden("#memory-summary-block .tag-unsaved")
    # the pinned edits are still unsaved, then saved as shown (the fact not added stays typed)
    assert pg.input_value("#pinned-list input") == "Likes green tea"
    mark_memory_tab(pg)
    pg.click("#memory-pinned-save")
    wait_memory_redrawn(pg)
    assert user_pins(stored_memory(api, session_id)) == ["Likes green tea"]
    assert pg.input_value('input[aria-label="New pinned fact"]') == "Has a cat named Miso"
    assert pg.is_hidden("#banner"), pg.inner_text("#banner")
    assert not pg.errors, pg.errors


def test_a_summary_changed_under_an_unsaved_edit_is_shown(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    session_id = new_session(api, "cody", {"strategy": "window"})
    memory_url = f"/v1/sessions/{session_id}/memory"
    open_page(pg, f"{server}/#{session_id}")
    pg.click("#tab-memory")
    pg.wait_for_selector("#memory-summary")

    mine = "Mine: the user plays the cello."
    pg.fill("#memory-summary", mine)
    assert api.patch(memory_url, json={"summary": "Theirs: a violin."}).status_code == 200
    mark_memory_tab(pg)
    pg.click("#memory-pinned-save")  # any re-draw
    wait_memory_redrawn(pg)
    assert pg.input_value("#memory-summary") == mine
    assert "changed while you were editing" in pg.inner_text("#memory-summary-stale")
    pg.click("#memory-summary-stale summary")
    assert "Theirs: a violin." in pg.inner_text("#memory-summary-stale .stale-stored")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.locator("#memory-summary-block").screenshot(path=str(ARTIFACTS / "page-memory-stale.png"))

    # saving keeps the user's text over the one stored meanwhile
    mark_memory_tab(pg)
    pg.click("#memory-summary-save")
    wait_memory_redrawn(pg)
    assert stored_memory(api, session_id)["summary"] == mine
    assert pg.locator("#memory-summary-stale").count() == 0

    # or the user takes the stored one
    pg.fill("#memory-summary", "A draft to throw away")
    assert api.patch(memory_url, json={"summary": "Stored again."}).status_code == 200
    mark_memory_tab(pg)
    pg.click("#memory-pinned-save")
    wait_memory_redrawn(pg)
    pg.click("#memory-summary-stale >> text=Discard my edit")
    assert pg.input_value("#memory-summary") == "Stored again."
    assert pg.locator("#memory-summary-stale").count() == 0
    assert pg.is_hidden("#memory-summary-block .tag-unsaved")
    assert stored_memory(api, session_id)["summary"] == "Stored again."
    assert not pg.errors, pg.errors


HISTORY = [
    ("My sister Mina lives in Busan and keeps bees on her roof.", "Bees on a roof, so cool!"),
    ("I started learning the cello last spring.", "You must practise a lot."),
    ("Our dog Bori hates thunderstorms.", "Poor Bori, give him a hug."),
    ("I work as a nurse on night shifts.", "Night shifts are hard, take care."),
    ("My favourite food is kimchi stew with tofu.", "Yum, I love it too."),
    ("We are planning a trip to Jeju in October.", "Jeju in autumn is lovely."),
    ("I broke my wrist skiing two winters ago.", "Ouch! I hope it healed well."),
    ("Grandma taught me to knit scarves.", "Knit me one, please!"),
]


def test_context_lists_recalled_turns_after_the_recent_buffer(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    # a small recent buffer, so most of the imported turns can only come back by recall
    session_id = new_session(api, "pippa", {"strategy": "hybrid", "buffer_tokens": 48})
    messages = [
        {"role": role, "content": text}
        for pair in HISTORY
        for role, text in zip(("user", "assistant"), pair, strict=True)
    ]
    r = api.post(f"/v1/sessions/{session_id}/history", json={"messages": messages})
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    wait_until(
        lambda: {i["id"] for i in stored_memory(api, session_id)["items"]} == set(ids),
        "the imported turns to reach the vector index",
    )

    open_page(pg, f"{server}/#{session_id}")
    send(pg, "Do you remember who keeps bees in Busan?", max_tokens=8)
    reply = wait_reply_stored(pg, len(HISTORY) + 1)  # after the imported replies
    reply_id = reply.get_attribute("data-id")
    ctx = api.get(f"/v1/sessions/{session_id}/context/{reply_id}").json()
    kinds = [p["kind"] for p in ctx["parts"]]
    assert kinds.index("recent") < kinds.index("recalled") < kinds.index("new"), kinds
    recalled = next(p for p in ctx["parts"] if p["kind"] == "recalled")
    assert len(recalled["messages"]) >= 2 and all(m["id"] for m in recalled["messages"])

    # the page: parts and bar segments in the Context's order, one row per recalled turn
    pg.wait_for_selector('#context-view .ctx-part[data-kind="recalled"]')
    rows = pg.eval_on_selector_all(".ctx-part[data-kind]", "els => els.map(e => e.dataset.kind)")
    assert rows == kinds
    segs = pg.eval_on_selector_all(
        ".ctx-bar .seg", "els => els.map(e => e.className.replace('seg kind-', ''))"
    )
    assert [s for s in segs if s != "overhead"] == [p["kind"] for p in ctx["parts"] if p["tokens"]]
    part = pg.locator('.ctx-part[data-kind="recalled"]')
    assert part.locator(".part-kind").inner_text() == "Recalled this turn"
    assert part.locator(".part-tokens").inner_text() == f"{recalled['tokens']:,} tok"
    n = len(recalled["messages"])
    # it counts messages (each recalled row is one stored message), not user/reply exchanges
    assert part.locator("summary .muted").inner_text() == f"{n} messages"
    part.locator("summary").click()
    # one system message for the model, listed one turn a line (no role chip of their own)
    assert "one system message" in part.locator(".part-note").inner_text()
    shown = part.locator(".part-msg")
    assert shown.count() == n and part.locator(".role").count() == 0
    assert part.locator(".part-msg button >> text=forget").count() == n
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "page-context-recalled.png"))
    pg.locator("#inspector-body").screenshot(
        path=str(ARTIFACTS / "page-context-recalled-panel.png")
    )

    # forget one recalled turn from the Context tab: the server forgets it, the row says so
    first = recalled["messages"][0]
    row = shown.filter(has=pg.locator(".muted", has_text=re.compile(rf"^#{first['id']}$")))
    row.locator("text=forget").click()
    pg.wait_for_selector('.ctx-part[data-kind="recalled"] .part-msg.forgotten')
    assert "forgotten" in row.inner_text()
    memory = stored_memory(api, session_id)
    assert first["id"] in memory["forgotten"]
    assert first["id"] not in {i["id"] for i in memory["items"]}
    assert pg.is_hidden("#banner"), pg.inner_text("#banner")
    assert not pg.errors, pg.errors
