"""Editing a session's memory strategy and params in the page (real browser, real server): what
the user typed survives switching strategy and back, an existing session shows its stored
params, and saving sends only what the user changed.

Screenshots of the new-chat dialog and the memory tab land in tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.page import ARTIFACTS, open_page

pytestmark = pytest.mark.slow  # a real model, a real server and a real browser


def field(box: str, param: str) -> str:
    return f'{box} [data-param="{param}"]'


def values(pg: Any, box: str) -> dict[str, str]:
    """Every param field shown in `box`: {param: its text}."""
    return pg.eval_on_selector_all(
        f"{box} [data-param]",
        "els => Object.fromEntries(els.map(e => [e.dataset.param, e.value]))",
    )


def filled(pg: Any, box: str) -> dict[str, str]:
    """The param fields of `box` that hold a value (blank ones mean the server's default)."""
    return {k: v for k, v in values(pg, box).items() if v}


def stored_memory(api: httpx.Client, session_id: str) -> dict[str, Any]:
    memory = api.get(f"/v1/sessions/{session_id}").json()["memory"]
    return {k: v for k, v in memory.items() if v is not None}


def test_new_chat_keeps_edits_across_strategy_and_persona_switches(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    box = "#strategy-params"
    open_page(pg, server)
    pg.click("#new-session")
    pg.locator('.persona-card[data-persona="pippa"]').click()
    assert pg.input_value("#new-strategy") == "hybrid"  # the persona's own strategy
    pg.fill(field(box, "buffer_tokens"), "300")
    pg.fill(field(box, "recall_k"), "7")
    pg.fill(field(box, "budget_tokens"), "2000")

    # another strategy: its own fields, blank (its defaults); the context budget stays
    pg.select_option("#new-strategy", "window")
    assert pg.input_value(field(box, "k")) == ""
    assert pg.input_value(field(box, "budget_tokens")) == "2000"
    pg.fill(field(box, "k"), "5")

    # and back: what the user typed, not the defaults
    pg.select_option("#new-strategy", "hybrid")
    shown = values(pg, box)
    assert shown["buffer_tokens"] == "300" and shown["recall_k"] == "7", shown
    assert shown["budget_tokens"] == "2000", shown
    pg.select_option("#new-strategy", "window")
    assert pg.input_value(field(box, "k")) == "5"
    pg.select_option("#new-strategy", "hybrid")

    # picking another persona once the user chose a strategy keeps the strategy and the edits
    pg.locator('.persona-card[data-persona="cody"]').click()
    assert pg.input_value("#new-strategy") == "hybrid"
    assert values(pg, box)["buffer_tokens"] == "300"
    pg.locator('.persona-card[data-persona="pippa"]').click()
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "page-new-chat-params.png"))

    pg.click("#new-create")
    pg.wait_for_function("location.hash.length > 1")
    session_id = pg.evaluate("location.hash.slice(1)")
    assert stored_memory(api, session_id) == {
        "strategy": "hybrid",
        "buffer_tokens": 300,
        "recall_k": 7,
        "budget_tokens": 2000,
    }
    assert not pg.errors, pg.errors


def test_existing_session_shows_stored_params_and_patches_only_changes(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    box = "#memory-params"
    created = api.post(
        "/v1/sessions",
        json={
            "persona": "cody",
            "title": "params",
            "memory": {"strategy": "window", "k": 3, "budget_tokens": 1500},
        },
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    patches: list[Any] = []
    pg.on(
        "request",
        lambda r: (
            r.method == "PATCH"
            and r.url.endswith(f"/sessions/{session_id}")
            and patches.append(r.post_data_json)
        ),
    )
    open_page(pg, f"{server}/#{session_id}")
    pg.click("#tab-memory")
    # the editor is folded by default (issue 17): open it
    pg.click("#memory-strategy-block > summary")
    pg.wait_for_selector("#memory-strategy")

    # the stored strategy and params, as GET /v1/sessions/{id} has them
    assert pg.input_value("#memory-strategy") == "window"
    assert filled(pg, box) == {"k": "3", "budget_tokens": "1500"}

    # away and back: the stored values again; the other strategy's fields start blank
    pg.select_option("#memory-strategy", "summary_buffer")
    shown = values(pg, box)
    assert "k" not in shown and shown["max_tokens"] == "" and shown["budget_tokens"] == "1500"
    pg.select_option("#memory-strategy", "window")
    assert filled(pg, box) == {"k": "3", "budget_tokens": "1500"}

    # an unsaved edit survives the memory tab being drawn again (here: after saving pins)
    pg.fill(field(box, "k"), "4")
    pg.eval_on_selector("#memory-strategy-block", "el => el.dataset.old = '1'")
    pg.click("text=Save pinned facts")
    pg.wait_for_selector("#memory-strategy-block:not([data-old])")
    assert pg.input_value(field(box, "k")) == "4"

    # save: only what changed goes out; the server keeps the rest
    pg.click("#memory-strategy-save")
    pg.wait_for_selector("#memory-strategy-block .block-head >> text=k 4")
    assert patches == [{"memory": {"k": 4}}]
    assert stored_memory(api, session_id) == {"strategy": "window", "k": 4, "budget_tokens": 1500}

    # nothing changed: nothing sent
    pg.click("#memory-strategy-save")
    pg.wait_for_selector("#memory-strategy-note:not([hidden])")
    assert "no param was changed" in pg.inner_text("#memory-strategy-note")
    assert len(patches) == 1

    # a blanked stored value is refused with a message naming it, not sent as a default
    pg.fill(field(box, "k"), "")
    pg.click("#memory-strategy-save")
    pg.wait_for_selector("#memory-strategy-error:not([hidden])")
    assert "k is stored as 4" in pg.inner_text("#memory-strategy-error")
    assert len(patches) == 1
    pg.fill(field(box, "k"), "4")
    assert pg.is_hidden("#memory-strategy-error")  # editing again clears it

    # another strategy: it and the fields shown filled (the budget among them)
    pg.select_option("#memory-strategy", "token_buffer")
    pg.fill(field(box, "max_tokens"), "600")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.locator("#memory-strategy-block").scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "page-memory-params.png"))
    pg.click("#memory-strategy-save")
    pg.wait_for_function("document.getElementById('chat-sub').textContent.includes('token_buffer')")
    assert patches[1:] == [
        {"memory": {"strategy": "token_buffer", "max_tokens": 600, "budget_tokens": 1500}}
    ]
    assert stored_memory(api, session_id) == {
        "strategy": "token_buffer",
        "max_tokens": 600,
        "budget_tokens": 1500,
    }
    pg.wait_for_selector("#memory-strategy-block .block-head >> text=max_tokens 600")
    assert pg.input_value("#memory-strategy") == "token_buffer"
    assert filled(pg, box) == {"max_tokens": "600", "budget_tokens": "1500"}
    assert pg.is_hidden("#banner"), pg.inner_text("#banner")
    assert not pg.errors, pg.errors
