"""Bugs the fuzzer found, pinned as exact reproductions (strict xfail: they flip when fixed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sec_harness import LiveServer

HUGE = 2**63  # one past SQLite's INTEGER range


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    _, key = server.new_key()
    with server.client(key) as c:
        yield c


@pytest.fixture(scope="module")
def sid(client: httpx.Client) -> str:
    return client.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]


def paths(sid: str) -> list[tuple[str, str, dict[str, int]]]:
    return [
        ("GET", "/v1/sessions", {"offset": HUGE}),
        ("GET", f"/v1/sessions/{sid}/messages", {"before": HUGE}),
        ("GET", f"/v1/sessions/{sid}/context/{HUGE}", {}),
        ("DELETE", f"/v1/sessions/{sid}/memory/items/{HUGE}", {}),
    ]


@pytest.mark.parametrize("i", range(4), ids=["offset", "before", "context_id", "item_id"])
@pytest.mark.xfail(
    strict=True,
    reason="BUG: integers past SQLite's 64-bit range reach the database (OverflowError -> 500); "
    "bound them with le=2**63-1 in app/api/sessions.py (offset), app/api/messages.py (before), "
    "app/api/context.py and app/api/memory.py (message_id paths)",
)
def test_out_of_range_integers_are_422_not_500(client: httpx.Client, sid: str, i: int) -> None:
    method, path, params = paths(sid)[i]
    r = client.request(method, path, params=params)
    assert r.status_code in (404, 422), (r.status_code, r.text)
