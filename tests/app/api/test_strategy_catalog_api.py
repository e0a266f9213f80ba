"""GET /v1/strategies against the real app (uvicorn, real model, SQLite, auth on): every strategy
of the registry with its params, defaults, bounds and descriptions, straight from the Params
models, and defaults a client can send back as they are."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.server import LiveServer, assert_error, make_settings

from app.cli.chat_client import ChatClient
from app.schemas import MemoryConfig
from memory import registry
from memory.strategies.vector import HybridParams


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("strategies"), auth="required")
    with LiveServer(settings) as s:
        yield s


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.new_key("strategies")[1]


@pytest.fixture(scope="module")
def client(server: LiveServer, key: str) -> Iterator[httpx.Client]:
    with server.client(key) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/v1/strategies")
    assert r.status_code == 200, r.text
    return r.json()


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_every_registry_strategy_is_listed_in_registry_order(catalog: dict[str, Any]) -> None:
    assert [s["name"] for s in catalog["strategies"]] == list(registry.STRATEGIES)
    for s in catalog["strategies"]:
        params = registry.get(s["name"]).Params.model_fields
        assert [p["name"] for p in s["params"]] == list(params), s["name"]


def test_defaults_are_the_params_models_defaults(catalog: dict[str, Any]) -> None:
    hybrid = by_name(catalog["strategies"])["hybrid"]
    defaults = {p["name"]: p["default"] for p in hybrid["params"]}
    assert defaults == HybridParams().model_dump(mode="json")
    for s in catalog["strategies"]:
        expected = registry.get(s["name"]).Params().model_dump(mode="json")
        assert {p["name"]: p["default"] for p in s["params"]} == expected, s["name"]


def test_descriptions_are_present(catalog: dict[str, Any]) -> None:
    for s in catalog["strategies"]:
        doc = inspect.getdoc(registry.get(s["name"])) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        assert s["description"] and s["description"] == first, s["name"]
        for p in s["params"]:
            assert p["description"].strip(), f"{s['name']}.{p['name']} has no description"


def test_types_bounds_and_choices(catalog: dict[str, Any]) -> None:
    hybrid = by_name(by_name(catalog["strategies"])["hybrid"]["params"])
    assert hybrid["recall_k"] == {
        "name": "recall_k",
        "type": "integer",
        "default": 200,
        "description": HybridParams.model_fields["recall_k"].description,
        "minimum": 1,
        "maximum": 500,
    }  # bounds a param does not have are absent, not null
    assert hybrid["recall_max_tokens"]["nullable"] is True
    assert hybrid["recall_max_tokens"]["type"] == "integer"
    assert hybrid["summarizer"]["enum"] == ["llm", "extractive"]
    assert hybrid["summarizer"]["type"] == "string"
    # hybrid's own default (its notes cost the model's time for little: memory/strategies/
    # vector.py); the summarizing strategies keep the model's notes
    assert hybrid["summarizer"]["default"] == "extractive"
    summary_buffer = by_name(by_name(catalog["strategies"])["summary_buffer"]["params"])
    assert summary_buffer["summarizer"]["default"] == "llm"
    assert hybrid["evict_to"]["type"] == "number"
    assert hybrid["evict_to"]["exclusive_minimum"] == 0 and "minimum" not in hybrid["evict_to"]
    assert by_name(catalog["strategies"])["buffer"]["params"] == []


def test_service_params_come_from_the_request_model(catalog: dict[str, Any]) -> None:
    budget = by_name(catalog["service_params"])["budget_tokens"]
    field = MemoryConfig.model_json_schema()["properties"]["budget_tokens"]
    assert budget["default"] is None and budget["nullable"] is True
    assert budget["minimum"] == field["anyOf"][0]["minimum"]
    assert budget["description"] == field["description"]


def test_listed_defaults_are_accepted_when_sent_back(
    client: httpx.Client, catalog: dict[str, Any]
) -> None:
    for s in catalog["strategies"]:
        params = {p["name"]: p["default"] for p in s["params"]}
        r = client.post(
            "/v1/sessions", json={"persona": "cody", "memory": {"strategy": s["name"], **params}}
        )
        assert r.status_code == 201, (s["name"], r.text)
        stored = r.json()["memory"]
        assert {k: stored[k] for k in params} == params, s["name"]


def test_needs_a_key_like_every_v1_route(server: LiveServer) -> None:
    with server.client() as anonymous:
        assert_error(anonymous.get("/v1/strategies"), 401)


def test_the_terminal_client_lists_them(server: LiveServer, key: str) -> None:
    chat = ChatClient(server.url, key)
    try:
        listed = chat.strategies()
    finally:
        chat.close()
    assert [s["name"] for s in listed] == list(registry.STRATEGIES)
    assert all(s["description"] for s in listed)
