"""A second process on the same data (issue 15): `memento serve` refuses at once, before the
model loads, naming the server that holds the directory; a busy port is refused before the
model loads too; `memento chat` uses the running server instead of opening its data.

Real processes and real OS locks: the test process holds the data directory as a running
server does (app/data_lock.py), and `memento serve` runs as a subprocess. The slow test runs a
real server and shows a live reply is not touched by a second start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.proc import ServerProcess, free_port
from support.server import sse_events

from app import data_lock

REPO = Path(__file__).resolve().parents[2]
MEMENTO = Path(sys.executable).parent / "memento"


def memento(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MEMENTO_DATA_DIR": str(data_dir),
        "MEMENTO_PERSONAS_DIR": str(REPO / "personas"),
        "COLUMNS": "200",  # rich wraps at the terminal width: keep the message on one line
    }
    for name in ("MEMENTO_DATABASE_URL", "MEMENTO_CHROMA_URL", "MEMENTO_PORT"):
        env.pop(name, None)
    return subprocess.run(
        [str(MEMENTO), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_second_serve_on_a_held_data_dir_refuses_before_loading(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = data_lock.acquire(data, url="http://127.0.0.1:8123", port=8123)
    try:
        done = memento(data, "serve", "--port", str(free_port()))
    finally:
        lock.release()
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, out
    assert f"in use by Memento pid {os.getpid()} on http://127.0.0.1:8123" in out
    assert "loading" not in out and "Memento on" not in out  # refused before the model
    assert not (data / "memento.db").exists()  # and before touching the data


def test_busy_port_is_refused_before_loading(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = memento(tmp_path / "data", "serve", "--port", str(port))
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, out
    assert f"port {port} on 127.0.0.1 is already in use" in out
    assert "loading" not in out and "Memento on" not in out
    # the refused server let go of its data directory
    data_lock.acquire(tmp_path / "data").release()


def test_lock_is_reentrant_in_process_and_released_by_the_os(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = data_lock.acquire(data)
    second = data_lock.acquire(data)  # the CLI and then the app's lifespan, one process
    first.release()
    assert data_lock.holder(data) is None  # ours: not "another process"
    second.release()
    # a child that holds it and dies by SIGKILL leaves no stale lock behind
    code = (
        "import os, sys; from pathlib import Path; from app import data_lock; "
        "data_lock.acquire(Path(sys.argv[1]), url='http://x'); print('held', flush=True); "
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert data_lock.holder(data) == {
            "pid": child.pid,
            "url": "http://x",
            "started_at": data_lock.holder(data)["started_at"],  # type: ignore[index]
        }
    finally:
        child.kill()
        child.wait()
    assert data_lock.holder(data) is None


def test_chat_without_url_refuses_a_server_that_has_not_said_where_it_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = data_lock.acquire(data)  # no URL yet: a server still starting
    try:
        done = memento(data, "chat")
    finally:
        lock.release()
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, out
    assert f"in use by Memento pid {os.getpid()}" in out and "--url" in out


@pytest.mark.slow
def test_second_start_leaves_a_live_reply_alone_and_chat_finds_the_server(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            sid = http.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
            body = {
                "content": "Write a very long story about a lighthouse keeper.",
                "stream": True,
                "max_tokens": 200,
                "temperature": 0,
            }
            with http.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
                lines = r.iter_lines()
                events = sse_events(lines)
                deltas = 0
                for event, _ in events:  # a few tokens in: the reply is being generated
                    deltas += event == "delta"
                    if deltas == 3:
                        break
                second = memento(data, "serve", "--port", str(free_port()))
                out = " ".join((second.stdout + second.stderr).split())
                assert second.returncode == 2, out
                assert f"in use by Memento pid {server.proc.pid} on {server.url}" in out  # type: ignore[union-attr]
                live = http.get(f"/v1/sessions/{sid}/messages").json()["messages"][-1]
                assert live["status"] == "pending"  # the second start flipped nothing
                rest = [event for event, _ in events]
            assert rest[-1] == "done"
            final = http.get(f"/v1/sessions/{sid}/messages").json()["messages"][-1]
            assert final["status"] == "complete" and final["content"]
        # `memento chat` without --url finds the running server (and would not open its data)
        chat = subprocess.run(
            [str(MEMENTO), "chat", "--session", sid],
            input="/quit\n",
            env={**server.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert f"using the running server at {server.url}" in chat.stdout + chat.stderr
    finally:
        server.terminate()
