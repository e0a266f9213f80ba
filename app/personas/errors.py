"""The one error of persona loading and import (a startup error, or HTTP 422 on upload)."""

from __future__ import annotations


class PersonaError(ValueError):
    """A persona file or card is invalid. Names the source (file), the field and the problem."""

    def __init__(self, source: str, field: str | None, problem: str):
        where = f"{source}: field {field!r}" if field else source
        super().__init__(f"{where}: {problem}")
        self.source, self.field, self.problem = source, field, problem
