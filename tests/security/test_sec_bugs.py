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


def yaml_bomb(persona_id: str, depth: int, width: int = 10) -> str:
    """A persona of a few hundred bytes whose YAML aliases expand to width**depth strings."""
    lines = ['x0: &a0 ["lol"]']
    for d in range(1, depth + 1):
        lines.append(f"x{d}: &a{d} [" + ", ".join([f"*a{d - 1}"] * width) + "]")
    deep = "\n".join("      " + line for line in lines)
    return (f"id: {persona_id}\nname: Bomb\nsystem_prompt: hi\n"
            f"memory:\n  strategy: buffer\n  params:\n    deep:\n{deep}\n")


@pytest.mark.xfail(
    strict=True,
    reason="BUG app/personas/loader.py parse_persona_text: yaml.safe_load expands aliases and "
    "PersonaMemory.params (dict[str, Any]) accepts anything, so ~700 bytes of YAML become "
    "10**9 strings when the persona is serialized (save_persona, GET /v1/personas/{id}): an "
    "out-of-memory DoS by any caller who may upload a persona. Reject YAML alias events and "
    "validate memory.params against the strategy registry at load time.",
)
def test_yaml_alias_bomb_in_a_persona_upload_is_refused(client: httpx.Client) -> None:
    import secrets

    text = yaml_bomb(f"bomb-{secrets.token_hex(4)}", depth=5)  # 10**5 strings: harmless here
    assert len(text) < 1000
    r = client.post("/v1/personas", content=text, headers={"content-type": "application/yaml"})
    assert r.status_code == 422, (r.status_code, len(r.content))
