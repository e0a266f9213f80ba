"""MEMENTO_LLM_URL: a Memento that generates on a second, real Memento's OpenAI-compatible
endpoint (the embedded model behind real HTTP), and a clear 503 when that server is dead."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.server import LiveServer, assert_error, make_settings

from app.llm.embedded import default_gguf_path
from app.llm.factory import load_engine
from app.llm.openai_engine import OpenAIEngine
from app.llm.types import GenerationParams


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("model-server"))) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_remote_engine_streams_from_a_real_server_with_exact_counts(
    model_server: LiveServer, mlx_worker, engine, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path, llm_url=f"{model_server.url}/v1", model=str(default_gguf_path())
    )
    remote = load_engine(settings, mlx_worker)
    assert isinstance(remote, OpenAIEngine)
    assert remote.context_window == engine.context_window
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    # same tokenizer and template as the local engine: budgets stay exact
    assert remote.count(messages) == engine.count(messages)
    chunks = [c async for c in remote.stream(messages, GenerationParams(max_tokens=12))]
    text = "".join(c.text for c in chunks)
    local = await engine.complete(messages, GenerationParams(max_tokens=12))
    await remote.aclose()
    assert text == local  # greedy on the same model, through real HTTP
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length") and last.usage is not None
    assert last.usage.prompt_tokens == engine.count(messages)
    assert 0 < last.usage.completion_tokens <= 12


def test_a_memento_on_a_remote_model_chats_and_stores_turns(
    model_server: LiveServer, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, llm_url=f"{model_server.url}/v1")
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=300) as client:
        health = client.get("/healthz").json()
        assert health["backend"] == "openai"
        sid = client.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
        body = client.post(
            f"/v1/sessions/{sid}/messages", json={"content": "Say hello.", "max_tokens": 8}
        ).json()
        assert body["reply"]["status"] == "complete" and body["reply"]["content"]
        assert body["usage"]["prompt_tokens"] > 0
        stored = client.get(f"/v1/sessions/{sid}/messages").json()["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"]


def test_a_dead_model_server_is_a_clear_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_url=f"http://127.0.0.1:{_free_port()}/v1")
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as client:
        sid = client.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
        resp = client.post(f"/v1/sessions/{sid}/messages", json={"content": "hi", "max_tokens": 4})
        err = assert_error(resp, 503)
        assert "127.0.0.1" in err["message"]
        # the user's message was acknowledged and kept; nothing half-written
        stored = client.get(f"/v1/sessions/{sid}/messages").json()["messages"]
        assert stored[0]["role"] == "user" and stored[0]["content"] == "hi"
