"""Running the real service in tests: settings on a temp data dir, and a real uvicorn server on
a free loopback port (for the openai client, streaming disconnects, shutdown, auth).

Everything is real: the embedded model, SQLite, embedded Chroma. Build one app per test module
(the model load is the expensive part).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app

REPO = Path(__file__).resolve().parents[2]
PERSONAS = REPO / "personas"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on `data_dir` with the embedded model and stores, auth off and the limits
    relaxed (tests poll and fire requests in bursts; the limits have their own tests)."""
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "personas_dir": PERSONAS,
        "database_url": None,
        "chroma_url": None,
        "model": None,
        "llm_url": None,
        "context_window": None,
        "auth": "off",
        "rate_limit_per_minute": 100_000,
        "max_concurrent_per_user": 64,
    }
    base.update(overrides)
    return Settings(**base)


class LiveServer:
    """uvicorn running `create_app(settings)` in a daemon thread, on a free loopback port."""

    def __init__(self, settings: Settings, graceful_timeout: float | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=graceful_timeout,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)
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
        assert not self.thread.is_alive(), "the server did not stop"

    def new_key(self, name: str | None = None) -> tuple[str, str]:
        """(user id, plaintext key) of a fresh user."""
        store = self.services.store
        user = store.get_or_create_user(name or f"user-{secrets.token_hex(4)}")
        _, key = store.create_api_key(user.id)
        return user.id, key

    def client(self, key: str | None = None, timeout: float = 300.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _decoded(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream, data decoded as JSON when it is JSON."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, _decoded("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:  # a stream that ended without the final blank line
        yield event, _decoded("\n".join(data))


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    """The uniform error shape {"error": {message, type, param, code, field}} (OpenAI's error
    object plus our dotted `field`), with the expected status and (when given) field."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code", "field"}, err
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] in ("invalid_request_error", "requests", "server_error"), err
    # param is field spelt OpenAI's way (none for an unknown model, as OpenAI's 404)
    assert (err["param"] is None) == (err["field"] is None or err["code"] == "model_not_found")
    if field is not None:
        assert err["field"] == field, err
    return err


error_of = assert_error  # the name the security suites use


def wait_until(check: Callable[[], Any], what: str, timeout: float = 300.0) -> Any:
    """Poll until check() is truthy (background memory work); fails with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
