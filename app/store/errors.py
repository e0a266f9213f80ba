"""Domain errors of the store. The service maps them to HTTP in one place.

NotFound -> 404, Conflict -> 409, LimitExceeded -> 413, InvalidData -> 422.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class NotFound(StoreError):
    """A thing does not exist, or belongs to another user (never reveal which)."""

    def __init__(self, kind: str, id: object):
        super().__init__(f"{kind} {id!r} not found")
        self.kind, self.id = kind, id


class Conflict(StoreError):
    """The write conflicts with the current state (duplicate id, concurrent update)."""


class LimitExceeded(StoreError):
    """A configured limit would be exceeded (e.g. sessions per user, import size)."""

    def __init__(self, limit: str, value: int, maximum: int):
        super().__init__(f"{limit} limit exceeded: {value} > {maximum}")
        self.limit, self.value, self.maximum = limit, value, maximum


class InvalidData(StoreError):
    """Input the store cannot accept (e.g. a malformed session export); names the field."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem
