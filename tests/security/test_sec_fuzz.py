"""Fuzz the whole API from its own OpenAPI document (schemathesis): no 5xx, and every response
conforms to the document (status codes, content types, bodies).

A small run is part of the normal suite; `make fuzz` (pytest -m fuzz) runs >= 1,000 cases.
Cases are aimed at real sessions half of the time, so the routes behind a session id are
exercised beyond their 404.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.server import LiveServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, cases: int, derandomize: bool
) -> dict[str, int]:
    # generation is the slow part and not what is fuzzed: keep every reply to a few tokens
    monkeypatch.setattr(server.settings, "max_tokens_limit", 4)
    monkeypatch.setattr(server.settings, "default_max_tokens", 2)
    _, key = server.new_key()
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=headers)
    with server.client(key) as c:
        sessions = []
        for strategy in ("buffer", "vector", "summary_buffer"):
            r = c.post(
                "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": strategy}}
            )
            assert r.status_code == 201, r.text
            sessions.append(r.json()["id"])
    statuses: dict[str, int] = {}

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=derandomize,  # the small run is the same run every time
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        params = case.path_parameters or {}
        if "session_id" in params and data.draw(st.booleans()):
            params["session_id"] = data.draw(st.sampled_from(sessions))
        if case.headers and "X-Memento-Session" in case.headers and data.draw(st.booleans()):
            case.headers["X-Memento-Session"] = data.draw(st.sampled_from(sessions))
        response = case.call_and_validate(
            base_url=server.url, headers=headers, checks=CHECKS, timeout=300
        )
        key = f"{case.method} {case.path} {response.status_code}"
        statuses[key] = statuses.get(key, 0) + 1

    run()
    return statuses


def test_fuzz_small(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = fuzz(server, monkeypatch, 100, derandomize=True)
    assert sum(statuses.values()) >= 100
    # the run reached past validation somewhere (not only 404/422s)
    assert any(k.endswith((" 200", " 201", " 204")) for k in statuses), statuses


@pytest.mark.fuzz
def test_fuzz_thousand(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = fuzz(server, monkeypatch, 1000, derandomize=False)
    assert sum(statuses.values()) >= 1000
    print("\n".join(f"{n:5d}  {k}" for k, n in sorted(statuses.items())))
