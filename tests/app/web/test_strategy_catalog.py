"""The page reads the memory strategies from GET /v1/strategies (real browser, real server): the
new-chat dialog offers the server's strategies, shows their defaults as placeholders and their
descriptions as help, and still works (with an error saying so) when that request fails.

Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.page import ARTIFACTS

pytestmark = pytest.mark.slow  # a real model, a real server and a real browser
BOX = "#strategy-params"


def open_new_chat(pg: Any, url: str, persona: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("body[data-ready]")
    pg.click("#new-session")
    pg.locator(f'.persona-card[data-persona="{persona}"]').click()


def field(param: str) -> str:
    return f'{BOX} [data-param="{param}"]'


def shown_default(pg: Any, param: str) -> str:
    """What a blank field says it stands for: an input's placeholder, a select's first option."""
    return pg.eval_on_selector(
        field(param),
        "el => el.tagName === 'SELECT' ? el.options[0].textContent : el.placeholder",
    )


def test_new_chat_shows_the_servers_defaults_and_descriptions(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    catalog = api.get("/v1/strategies").json()
    hybrid = next(s for s in catalog["strategies"] if s["name"] == "hybrid")
    params = {p["name"]: p for p in hybrid["params"]}
    open_new_chat(pg, server, "pippa")  # a hybrid persona without params of its own

    assert pg.input_value("#new-strategy") == "hybrid"
    options = pg.eval_on_selector_all("#new-strategy option", "els => els.map(e => e.value)")
    assert options == [s["name"] for s in catalog["strategies"]]
    assert pg.inner_text("#strategy-help") == hybrid["description"]

    # the server's default, read from the API rather than written here (200 today)
    assert shown_default(pg, "recall_k") == str(params["recall_k"]["default"])
    assert shown_default(pg, "recall_max_tokens") == str(params["recall_max_tokens"]["default"])
    for name, p in params.items():
        shown = shown_default(pg, name)
        expected = f"default ({p['default']})" if p.get("enum") else str(p["default"])
        assert shown == expected, (name, shown)
        assert pg.get_attribute(field(name), "title").startswith(p["description"]), name
    # every server param is a field, and the service's own budget after them
    shown = pg.eval_on_selector_all(f"{BOX} [data-param]", "els => els.map(e => e.dataset.param)")
    assert set(shown) == set(params) | {p["name"] for p in catalog["service_params"]}
    assert shown[-1] == "budget_tokens"
    assert pg.inner_text(f'{BOX} label[for="strategy-params-recall_k"]') == "Turns recalled"

    # another strategy: its own defaults and description
    pg.select_option("#new-strategy", "window")
    window = next(s for s in catalog["strategies"] if s["name"] == "window")
    assert pg.inner_text("#strategy-help") == window["description"]
    k = next(p for p in window["params"] if p["name"] == "k")
    assert shown_default(pg, "k") == str(k["default"])
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "page-new-chat-defaults.png"))
    pg.click("#new-cancel")
    assert not pg.errors, pg.errors


def test_new_chat_still_works_when_the_strategies_cannot_be_loaded(
    page: Any, server: str, api: httpx.Client
):
    pg = page
    # the one way to make only this request fail against a healthy server: answer it here
    unavailable = {"error": {"code": "starting", "message": "try later", "field": None}}
    pg.route("**/v1/strategies", lambda route: route.fulfill(status=503, json=unavailable))
    open_new_chat(pg, server, "pippa")

    pg.wait_for_selector("#strategy-help.form-error")
    help_text = pg.inner_text("#strategy-help")
    assert "Could not load the memory strategies: try later" in help_text
    assert pg.input_value("#new-strategy") == "hybrid"  # the persona's, as the server knows it
    assert pg.is_visible(field("budget_tokens"))
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "page-new-chat-no-strategies.png"))

    # blank fields are the server's defaults: the chat is created all the same
    pg.fill(field("budget_tokens"), "1500")
    pg.click("#new-create")
    pg.wait_for_function("location.hash.length > 1")
    session_id = pg.evaluate("location.hash.slice(1)")
    memory = api.get(f"/v1/sessions/{session_id}").json()["memory"]
    assert {k: v for k, v in memory.items() if v is not None} == {
        "strategy": "hybrid",
        "budget_tokens": 1500,
    }

    # once the server answers again, the next dialog loads the strategies
    pg.unroute("**/v1/strategies")
    pg.click("#new-session")
    pg.locator('.persona-card[data-persona="pippa"]').click()
    pg.wait_for_selector(field("recall_k"))
    assert "form-error" not in (pg.get_attribute("#strategy-help", "class") or "")
    pg.click("#new-cancel")
    # only the browser's own notes about the refused requests may be logged
    assert [e for e in pg.errors if "503" not in e] == [], pg.errors
