"""Bugs the fuzzer found, pinned as exact reproductions (regression tests now they are fixed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.server import LiveServer

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
def test_out_of_range_integers_are_422_not_500(client: httpx.Client, sid: str, i: int) -> None:
    method, path, params = paths(sid)[i]
    r = client.request(method, path, params=params)
    assert r.status_code == 422, (r.status_code, r.text)
    assert "9223372036854775807" in r.text, r.text  # says what the bound is


@pytest.mark.parametrize("path", ["messages", "openai"])
def test_out_of_range_seed_is_refused_before_generation(
    client: httpx.Client, sid: str, path: str
) -> None:
    # the seed becomes the sampler's 64-bit key: past that the engine would fail mid-turn
    if path == "messages":
        r = client.post(
            f"/v1/sessions/{sid}/messages", json={"content": "hi", "max_tokens": 1, "seed": HUGE}
        )
    else:
        r = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "seed": -1},
        )
    # 422 on our API, OpenAI's 400 on its
    assert r.status_code == (422 if path == "messages" else 400), (r.status_code, r.text)
    assert "seed" in r.text, r.text


def yaml_bomb(persona_id: str, depth: int, width: int = 10) -> str:
    """A persona of a few hundred bytes whose YAML aliases expand to width**depth strings."""
    lines = ['x0: &a0 ["lol"]']
    for d in range(1, depth + 1):
        lines.append(f"x{d}: &a{d} [" + ", ".join([f"*a{d - 1}"] * width) + "]")
    deep = "\n".join("      " + line for line in lines)
    return (
        f"id: {persona_id}\nname: Bomb\nsystem_prompt: hi\n"
        f"memory:\n  strategy: buffer\n  params:\n    deep:\n{deep}\n"
    )


def test_yaml_alias_bomb_in_a_persona_upload_is_refused(client: httpx.Client) -> None:
    import secrets

    text = yaml_bomb(f"bomb-{secrets.token_hex(4)}", depth=5)  # 10**5 strings: harmless here
    assert len(text) < 1000
    r = client.post("/v1/personas", content=text, headers={"content-type": "application/yaml"})
    assert r.status_code == 422, (r.status_code, len(r.content))
    assert "alias" in r.json()["error"]["message"], r.text


def test_unknown_memory_params_in_a_persona_upload_are_refused(client: httpx.Client) -> None:
    import secrets

    pid = f"params-{secrets.token_hex(4)}"
    body = {
        "id": pid,
        "name": "P",
        "system_prompt": "hi",
        "memory": {"strategy": "buffer", "params": {"deep": [["lol"] * 10] * 10}},
    }
    r = client.post("/v1/personas", json=body)
    assert r.status_code == 422, (r.status_code, r.text)
    message = r.json()["error"]["message"]
    assert "memory.params.deep" in message and "buffer" in message, message
    assert client.get(f"/v1/personas/{pid}").status_code == 404
