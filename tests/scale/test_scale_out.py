"""Scale-out for real: two `memento serve` processes sharing one PostgreSQL database and one
Chroma server (`chroma run`). A conversation alternating between them continues correctly, and
turns on one session stay serialized across the replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support.proc import ServerProcess, free_port

PG_ADMIN = os.environ.get("MEMENTO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHROMA = Path(sys.executable).parent / "chroma"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"memento_scale_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_ADMIN} is unreachable: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "chroma.log").open("wb")
    proc = subprocess.Popen(
        [
            str(CHROMA),
            "run",
            "--path",
            str(path / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "FALSE"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (path / "chroma.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "chroma server did not start"
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, chroma_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        "MEMENTO_DATABASE_URL": pg_url,
        "MEMENTO_CHROMA_URL": chroma_url,
        "MEMENTO_SESSION_WAIT_SECONDS": "300",
    }
    a = ServerProcess(tmp_path_factory.mktemp("replica-a"), **env).start()
    try:
        b = ServerProcess(tmp_path_factory.mktemp("replica-b"), **env).start()
    except BaseException:
        a.kill()
        raise
    yield a, b
    for server in (a, b):
        server.terminate()


def _post(url: str, sid: str, content: str) -> dict:
    resp = httpx.post(
        f"{url}/v1/sessions/{sid}/messages", json={"content": content, "max_tokens": 8}, timeout=600
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_replicas_report_the_shared_backends(replicas: tuple[ServerProcess, ...]) -> None:
    for server in replicas:
        health = httpx.get(f"{server.url}/healthz", timeout=10).json()
        assert "postgresql" in str(health["store"])
        assert "chroma" in str(health["vector"]) and "127.0.0.1" in str(health["vector"])


def test_a_conversation_alternating_between_replicas_continues(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    sid = httpx.post(f"{a.url}/v1/sessions", json={"persona": "assistant"}, timeout=30).json()["id"]
    said = ["My cat is called Mochi.", "I live in Busan.", "What is my cat called?"]
    for server, text in zip((a, b, a), said, strict=True):
        _post(server.url, sid, text)
    for server in (a, b):
        messages = httpx.get(f"{server.url}/v1/sessions/{sid}/messages", timeout=30).json()[
            "messages"
        ]
        assert [m["role"] for m in messages] == ["user", "assistant"] * 3
        assert [m["content"] for m in messages if m["role"] == "user"] == said
    # the third turn, assembled on replica a, saw the turns stored through replica b
    ctx = httpx.post(
        f"{b.url}/v1/sessions/{sid}/context", json={"content": "and?"}, timeout=60
    ).json()
    seen = " ".join(m["content"] for p in ctx["parts"] for m in p["messages"])
    assert "Busan" in seen and "Mochi" in seen


def test_turns_on_one_session_stay_serialized_across_replicas(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    sid = httpx.post(f"{a.url}/v1/sessions", json={"persona": "assistant"}, timeout=30).json()["id"]
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(_post, s.url, sid, f"message {i}") for i, s in enumerate((a, b, a, b))]
        results = [j.result() for j in jobs]
    messages = httpx.get(f"{a.url}/v1/sessions/{sid}/messages", timeout=30).json()["messages"]
    # four whole turns, never interleaved: user, its reply, user, its reply ...
    assert [m["role"] for m in messages] == ["user", "assistant"] * 4
    for r in results:
        user_at = next(i for i, m in enumerate(messages) if m["id"] == r["message"]["id"])
        assert messages[user_at + 1]["id"] == r["reply"]["id"]
        # serialized means each turn was assembled after the previous one ended: its context
        # holds every earlier message (the history is far below the budget)
        ctx = httpx.get(f"{a.url}/v1/sessions/{sid}/context/{r['reply']['id']}", timeout=30)
        assert ctx.status_code == 200, ctx.text
        in_context = {m.get("id") for p in ctx.json()["parts"] for m in p["messages"]}
        earlier = {m["id"] for m in messages[:user_at]}
        assert earlier <= in_context, f"turn {user_at // 2} ran beside an earlier turn"
