"""The one error of lorebooks, raised where a book is read (model.py) and where its keys are
compiled (keys.py)."""

from __future__ import annotations


class LoreError(ValueError):
    """A book that cannot be used: names the field (e.g. "entries.3.keys.0")."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
