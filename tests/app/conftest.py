"""Fixtures shared by the tests of app/ (tests/app/store/ has its own, on two backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store.repo import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite store in a fresh directory."""
    s = Store(f"sqlite:///{tmp_path / 'memento.db'}")
    yield s
    s.close()
