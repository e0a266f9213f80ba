"""Plain records the Store returns (copied out of ORM rows: safe across threads and sessions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from memory.types import SessionInfo, StoredMessage

# The one definition of these: the API's schemas (app/schemas.py) import them.
MessageStatus = Literal["complete", "interrupted", "error", "pending"]
Role = Literal["user", "assistant", "system"]


class UserRecord(BaseModel):
    id: str
    name: str
    created_at: datetime


class ApiKeyRecord(BaseModel):
    id: str
    user_id: str
    user_name: str
    prefix: str  # the first characters of the key, to recognise it in listings
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class SessionRecord(BaseModel):
    id: str
    user_id: str
    persona_id: str
    title: str | None
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)  # never budget_tokens (below)
    created_at: datetime
    updated_at: datetime
    budget_tokens: int | None = None  # the cap on an assembled context; None: the model's room

    def memory_params(self) -> dict[str, Any]:
        """The params as clients write and read them (the API's `memory` object, an export's
        `params`): budget_tokens among the others, where it was before it got a column."""
        if self.budget_tokens is None:
            return dict(self.params)
        return {**self.params, "budget_tokens": self.budget_tokens}

    @property
    def cache_key(self) -> str:
        """The engine's KV cache key: "user/session". Only keys of one user share prefixes
        (app/llm/prompt_cache.py): how fast a first token comes must not tell one user what
        another's prompt starts with."""
        return f"{self.user_id}/{self.id}"

    def info(self) -> SessionInfo:
        """What memory needs to know of the session (its owner and persona)."""
        return SessionInfo(id=self.id, user_id=self.user_id, persona_id=self.persona_id)


class MessageRecord(BaseModel):
    id: int
    session_id: str
    role: Role
    content: str
    tokens: int
    status: MessageStatus
    created_at: datetime
    context_id: str | None = None
    usage: dict[str, int] | None = None  # a generated reply's (schema v8)

    def to_stored(self) -> StoredMessage:
        return StoredMessage(
            id=self.id,
            role=self.role,
            content=self.content,
            tokens=self.tokens,
            created_at=self.created_at,
            session_id=self.session_id,
        )


class NewMessage(BaseModel):
    """A message to insert (history import, session import)."""

    role: Role
    content: str
    tokens: int = 0
    status: MessageStatus = "complete"
    created_at: datetime | None = None  # default: now


class PersonaRecord(BaseModel):
    id: str
    user_id: str  # the uploader: the only user who sees it
    format: str  # "yaml" | "json" | "card"
    source: str
    created_at: datetime
    updated_at: datetime
