"""A real Memento server for the security suites: uvicorn in a thread on a free loopback port,
the embedded model, SQLite and embedded Chroma under a temp dir, auth required.

One server is shared by the whole package (the model load is the expensive part); every test
makes its own users, so per-user state (sessions, rate buckets) never leaks between tests.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app
from app.security import install_security

REPO = Path(__file__).resolve().parents[2]
PERSONAS = REPO / "personas"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "personas_dir": PERSONAS,
        "database_url": None,
        "chroma_url": None,
        "model": None,
        "llm_url": None,
        "context_window": None,
        "auth": "required",
    }
    base.update(overrides)
    return Settings(**base)


class LiveServer:
    """`create_app(settings)` + `install_security` served by uvicorn in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        install_security(self.app, settings)  # a no-op once create_app calls it itself
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-sec", daemon=True)
        self.port = 0

    def start(self, timeout: float = 600.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Any:
        return self.app.state.services

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(120)

    def new_key(self, name: str | None = None) -> tuple[str, str]:
        """(user id, plaintext key) of a fresh user."""
        store = self.services.store
        user = store.get_or_create_user(name or f"user-{secrets.token_hex(4)}")
        _, key = store.create_api_key(user.id)
        return user.id, key

    def client(self, key: str | None = None, timeout: float = 300.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream; data decoded as JSON when it is JSON."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                raw = "\n".join(data)
                try:
                    payload: Any = json.loads(raw)
                except json.JSONDecodeError:
                    payload = raw
                yield event, payload
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The uniform error body {"error": {code, message, field}} with the expected status."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "field"}, err
    assert isinstance(err["message"], str) and err["message"]
    return err
