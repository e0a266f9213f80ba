"""`memento serve` refuses a non-loopback address while auth is off, unless forced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import cli

PERSONAS = Path(__file__).resolve().parents[2] / "personas"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Record uvicorn's Server.run instead of serving: these tests are about the guard before
    it. The socket `memento serve` bound (before the model load) says where it would listen."""
    import uvicorn

    calls: list[dict[str, Any]] = []

    def run(self: uvicorn.Server, sockets: list[Any]) -> None:
        host = sockets[0].getsockname()[0]
        calls.append({"host": host})
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    for name in ("MEMENTO_AUTH", "MEMENTO_ALLOW_INSECURE_BIND", "MEMENTO_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMENTO_PERSONAS_DIR", str(PERSONAS))
    monkeypatch.setenv("MEMENTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEMENTO_PORT", "0")  # a free port: 8000 may be someone's server
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_refused_with_auth_off(
    served: list[dict[str, Any]], host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert "refusing" in err and "MEMENTO_AUTH=required" in err
    assert served == []


@pytest.mark.parametrize(
    ("host", "bound"),
    [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("::1", "::1"), ("127.0.0.2",) * 2],
)
def test_loopback_is_fine_with_auth_off(
    served: list[dict[str, Any]], host: str, bound: str
) -> None:
    assert cli.main(["serve", "--host", host]) == 0
    assert served and served[0]["host"] == bound


def test_forced_or_with_auth(served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0", "--force"]) == 0
    monkeypatch.setenv("MEMENTO_ALLOW_INSECURE_BIND", "1")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 0
    monkeypatch.delenv("MEMENTO_ALLOW_INSECURE_BIND")
    monkeypatch.setenv("MEMENTO_AUTH", "required")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 0
    assert len(served) == 3
