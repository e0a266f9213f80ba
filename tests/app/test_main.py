"""The app's lifespan: restarts lose nothing, a server stopped mid-reply stores it as
interrupted, and an invalid persona file stops start-up with a message naming file and field."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support.server import PERSONAS, LiveServer, make_settings, wait_until

from app.main import create_app
from app.personas.errors import PersonaError


def test_restart_loses_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as c:
        sid = c.post(
            "/v1/sessions",
            json={"persona": "assistant", "title": "pets", "memory": {"strategy": "hybrid"}},
        ).json()["id"]
        for text in ("We adopted a cat named Miso today!", "Miso loves tuna."):
            r = c.post(f"/v1/sessions/{sid}/messages", json={"content": text, "max_tokens": 10})
            assert r.status_code == 200, r.text
        c.patch(f"/v1/sessions/{sid}/memory", json={"pinned": [{"text": "The cat is Miso."}]})
        wait_until(
            lambda: len(c.get(f"/v1/sessions/{sid}/memory").json()["items"]) == 4,
            "the turns to be indexed",
        )
        before_session = c.get(f"/v1/sessions/{sid}").json()
        before_messages = c.get(f"/v1/sessions/{sid}/messages").json()["messages"]
        before_memory = c.get(f"/v1/sessions/{sid}/memory").json()

    with TestClient(create_app(settings)) as c:
        assert c.get(f"/v1/sessions/{sid}").json() == before_session
        assert c.get(f"/v1/sessions/{sid}/messages").json()["messages"] == before_messages
        # summary, pinned facts and the vector index all survived
        assert c.get(f"/v1/sessions/{sid}/memory").json() == before_memory
        r = c.post(
            f"/v1/sessions/{sid}/messages",
            json={"content": "What is the cat's name?", "max_tokens": 10},
        )
        assert r.status_code == 200, r.text
        ctx = c.get(f"/v1/sessions/{sid}/context/{r.json()['reply']['id']}").json()
        seen = {m.get("id") for p in ctx["parts"] for m in p["messages"]}
        assert {m["id"] for m in before_messages} <= seen  # the conversation continues
        pinned = " ".join(
            m["content"] for p in ctx["parts"] if p["kind"] == "pinned" for m in p["messages"]
        )
        assert "The cat is Miso." in pinned
        assert len(c.get(f"/v1/sessions/{sid}/messages").json()["messages"]) == 6


def test_server_stopped_mid_reply_stores_it_interrupted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server = LiveServer(settings, graceful_timeout=1).start()
    sid = httpx.post(f"{server.url}/v1/sessions", json={"persona": "assistant"}, timeout=60).json()[
        "id"
    ]
    got_delta = threading.Event()

    def stream() -> None:
        try:
            with httpx.stream(
                "POST",
                f"{server.url}/v1/sessions/{sid}/messages",
                json={
                    "content": "Write a long story about a lighthouse.",
                    "stream": True,
                    "max_tokens": 400,
                },
                timeout=600,
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("event: delta"):
                        got_delta.set()
        except httpx.HTTPError:
            pass  # the server went away mid-stream: expected

    client = threading.Thread(target=stream)
    client.start()
    assert got_delta.wait(300), "no delta arrived"
    server.stop()
    client.join(60)

    with TestClient(create_app(settings)) as c:
        msgs = c.get(f"/v1/sessions/{sid}/messages").json()["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant"]
        assert msgs[0]["status"] == "complete"
        assert msgs[1]["status"] == "interrupted" and msgs[1]["content"]
        r = c.post(f"/v1/sessions/{sid}/messages", json={"content": "Go on.", "max_tokens": 8})
        assert r.status_code == 200 and r.json()["reply"]["status"] == "complete"


@pytest.mark.parametrize(
    ("bad_yaml", "field"),
    [
        ("id: broken\nname: Broken\nsystem_prompt: hi\nstyle_rule: [typo]\n", "style_rule"),
        ("id: broken\nname: Broken\nsystem_promt: typo in the field name\n", "system_prompt"),
        (
            "id: broken\nname: Broken\nsystem_prompt: hi\ngeneration:\n  temperature: hot\n",
            "generation.temperature",
        ),
    ],
)
def test_invalid_persona_file_fails_startup(tmp_path: Path, bad_yaml: str, field: str) -> None:
    personas = tmp_path / "personas"
    shutil.copytree(PERSONAS, personas)
    (personas / "broken.yaml").write_text(bad_yaml, encoding="utf-8")
    settings = make_settings(tmp_path / "data", personas_dir=personas)
    with pytest.raises(PersonaError) as info, TestClient(create_app(settings)):
        pass
    message = str(info.value)
    assert "broken.yaml" in message and field in message
    assert info.value.field == field


def test_the_caches_take_their_caps_from_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", history_cache_messages=2000, recall_cache_mb=8, heap_trim_seconds=5
    )
    app = create_app(settings)
    with TestClient(app):
        services = app.state.services
        assert services.store.history_cache.max_messages == 2000
        assert services.recaller.inner.max_cache_bytes == 8 * 1024 * 1024
        assert services.heap.every == 5
