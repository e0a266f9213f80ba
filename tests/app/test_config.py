"""Settings: the memory caches' caps and the heap trim's period, from the environment, bounded,
and a bad value named at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from app.cli import main
from app.config import Settings, settings_problem
from app.store.repo import Store


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    default = Settings()
    assert default.history_cache_messages == 200_000
    assert default.recall_cache_bytes == 256 * 1024 * 1024
    assert default.heap_trim_seconds == 60.0
    monkeypatch.setenv("MEMENTO_HISTORY_CACHE_MESSAGES", "2000")
    monkeypatch.setenv("MEMENTO_RECALL_CACHE_MB", "8")
    monkeypatch.setenv("MEMENTO_HEAP_TRIM_SECONDS", "1.5")
    s = Settings()
    assert (s.history_cache_messages, s.recall_cache_bytes) == (2000, 8 * 1024 * 1024)
    assert s.heap_trim_seconds == 1.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEMENTO_HISTORY_CACHE_MESSAGES", "0"),
        ("MEMENTO_HISTORY_CACHE_MESSAGES", "lots"),
        ("MEMENTO_RECALL_CACHE_MB", "0"),
        ("MEMENTO_RECALL_CACHE_MB", "-5"),
        ("MEMENTO_HEAP_TRIM_SECONDS", "0.1"),
    ],
)
def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    problem = settings_problem(raised.value)
    assert problem is not None and problem.startswith(f"{name}={value!r}: ")


def test_other_validation_errors_are_not_settings() -> None:
    class Other(BaseModel):
        history_cache_messages: int

    with pytest.raises(ValidationError) as raised:
        Other.model_validate({})
    assert settings_problem(raised.value) is None


def test_serve_stops_at_a_bad_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMENTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEMENTO_RECALL_CACHE_MB", "0")
    assert main(["serve"]) == 2  # before anything loads or binds
    err = " ".join(capsys.readouterr().err.split())
    assert "bad setting" in err and "MEMENTO_RECALL_CACHE_MB='0'" in err
    assert not (tmp_path / "data").exists()


def test_the_store_takes_the_history_cap(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}", history_cache_messages=2000)
    try:
        assert store.history_cache.max_messages == 2000
    finally:
        store.close()
