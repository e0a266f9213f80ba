"""`memento serve` refuses a non-loopback address while auth is off, unless forced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import cli

PERSONAS = Path(__file__).resolve().parents[2] / "personas"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record uvicorn.run instead of serving: these tests are about the guard before it."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    # nor the busy-port check: port 8000 may be taken by a developer's own `make run`
    monkeypatch.setattr(cli, "port_in_use", lambda host, port: False)
    for name in ("MEMENTO_AUTH", "MEMENTO_ALLOW_INSECURE_BIND", "MEMENTO_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMENTO_PERSONAS_DIR", str(PERSONAS))
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_refused_with_auth_off(
    served: list[dict[str, Any]], host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert "refusing" in err and "MEMENTO_AUTH=required" in err
    assert served == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_is_fine_with_auth_off(served: list[dict[str, Any]], host: str) -> None:
    assert cli.main(["serve", "--host", host]) == 0
    assert served and served[0]["host"] == host


def test_forced_or_with_auth(served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0", "--force"]) == 0
    monkeypatch.setenv("MEMENTO_ALLOW_INSECURE_BIND", "1")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 0
    monkeypatch.delenv("MEMENTO_ALLOW_INSECURE_BIND")
    monkeypatch.setenv("MEMENTO_AUTH", "required")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 0
    assert len(served) == 3
