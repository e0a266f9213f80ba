"""`memento keys create|list|revoke` against a real store in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.store.repo import Store


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMENTO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MEMENTO_DATABASE_URL", raising=False)
    return tmp_path


def store_of(data_dir: Path) -> Store:
    return Store(f"sqlite:///{(data_dir / 'memento.db').resolve()}")


def test_create_prints_the_key_once_and_it_works(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--user", "alice"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("mk_") and "\n" not in key  # alone on stdout, for scripts
    assert "alice" in out.err and key not in out.err
    store = store_of(data_dir)
    try:
        user = store.verify_api_key(key)
        assert user is not None and user.name == "alice"
    finally:
        store.close()
    # listing shows the prefix, never the key
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert key[:11] in listed and key not in listed and "active" in listed


def test_revoke_by_prefix_and_by_id(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "create", "--user", "bob"])
    first = capsys.readouterr().out.strip()
    main(["keys", "create", "--user", "bob"])
    second = capsys.readouterr().out.strip()
    assert main(["keys", "revoke", first[:11] + "..."]) == 0  # as shown by `keys list`
    store = store_of(data_dir)
    try:
        assert store.verify_api_key(first) is None
        assert store.verify_api_key(second) is not None
        key_id = [k.id for k in store.list_api_keys() if k.revoked_at is None][0]
        assert main(["keys", "revoke", key_id]) == 0
        assert store.verify_api_key(second) is None
    finally:
        store.close()
    capsys.readouterr()
    assert main(["keys", "list", "--user", "bob"]) == 0
    assert capsys.readouterr().out.count("revoked") == 2


def test_errors_are_clear(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "revoke", "mk_nothere"]) == 1
    assert "no API key 'mk_nothere'" in capsys.readouterr().err
    assert main(["keys", "list", "--user", "nobody"]) == 1
    assert main(["keys", "create", "--user", "  "]) == 2
