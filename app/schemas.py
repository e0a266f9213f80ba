"""Request and response bodies of the HTTP API (DESIGN.md section 5): the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import BaseModel, ConfigDict, Field

from app.store.records import MessageStatus, Role
from memory.types import Context, PinnedFact

# Integers from a request that reach the database (or the sampler's uint64 key) must fit a
# signed 64-bit column: anything larger would raise OverflowError deep in the driver (a 500).
# Usable as a path or query parameter type, or a model field.
MAX_DB_INT = 2**63 - 1
DbId = Annotated[int, Interval(ge=1, le=MAX_DB_INT)]  # a row id (ids start at 1)
DbOffset = Annotated[int, Interval(ge=0, le=MAX_DB_INT)]  # an offset or count
Seed = Annotated[int, Interval(ge=0, le=MAX_DB_INT)]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# Documented on every route that can fail this way (OpenAPI shows the error shape).
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown session, persona or message"},
    409: {"model": ErrorBody, "description": "the session is busy generating"},
    413: {"model": ErrorBody, "description": "message, body or context too large"},
    422: {"model": ErrorBody, "description": "invalid field (named in error.field)"},
    503: {"model": ErrorBody, "description": "the engine failed"},
}


# -- health -----------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    model_id: str
    context_window: int
    backend: str
    store: str
    vector: str
    blas: str | None = None
    version: str


# -- personas ---------------------------------------------------------------------------------
class PersonaSummary(BaseModel):
    id: str
    name: str
    description: str = ""
    default_strategy: str | None = None
    source: str = "file"  # "file" (personas/) or "uploaded"


# -- sessions ---------------------------------------------------------------------------------
class MemoryConfig(BaseModel):
    """A strategy by name and its params; params are validated by the strategy registry."""

    model_config = ConfigDict(extra="allow")

    strategy: str | None = Field(
        default=None, description="strategy name; default: the persona's default strategy"
    )
    budget_tokens: int | None = Field(
        default=None, ge=64, description="caps the assembled context below the model budget"
    )

    def params(self) -> dict[str, Any]:
        """Everything but the strategy name: budget_tokens and the strategy's own params."""
        out = dict(self.model_extra or {})
        if self.budget_tokens is not None:
            out["budget_tokens"] = self.budget_tokens
        return out


class SessionCreate(BaseModel):
    persona: str = Field(default="assistant", min_length=1, max_length=100)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    title: str | None = Field(default=None, max_length=200)


class SessionPatch(BaseModel):
    title: str | None = Field(default=None, max_length=200)
    memory: MemoryConfig | None = None


class SessionMemoryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    strategy: str
    budget_tokens: int | None = None


class SessionOut(BaseModel):
    id: str
    persona: str
    title: str | None
    memory: SessionMemoryOut
    created_at: datetime
    updated_at: datetime


class SessionList(BaseModel):
    sessions: list[SessionOut]


# -- messages ---------------------------------------------------------------------------------
class MessageOut(BaseModel):
    id: int
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    tokens: int = 0
    context_id: str | None = None


class MessageList(BaseModel):
    messages: list[MessageOut]
    has_more: bool = False


class GenerationOptions(BaseModel):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: Seed | None = None
    stop: list[str] | None = Field(default=None, max_length=8)


class MessageCreate(GenerationOptions):
    content: str = Field(min_length=1)
    stream: bool = False


class UsageOut(BaseModel):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class TurnOut(BaseModel):
    message: MessageOut
    reply: MessageOut
    usage: UsageOut
    context_id: str | None


# -- history, context, memory ------------------------------------------------------------------
class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)
    created_at: datetime | None = None


class HistoryImport(BaseModel):
    messages: list[HistoryMessage] = Field(min_length=1)


class HistoryImported(BaseModel):
    ids: list[int]


class ContextRequest(BaseModel):
    content: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)


class ContextOut(Context):
    pass


class MemoryItem(BaseModel):
    """A stored message the vector memory may recall."""

    id: int
    role: Role
    content: str
    created_at: datetime


class MemoryOut(BaseModel):
    strategy: str
    summary: str
    summary_covers: list[int]
    pinned: list[PinnedFact]  # persona facts and style rules first, then the user's
    items: list[MemoryItem]
    forgotten: list[int]


class PinnedIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    id: str | None = Field(default=None, max_length=64)


class MemoryPatch(BaseModel):
    summary: str | None = Field(default=None, max_length=100_000)
    pinned: list[PinnedIn] | None = Field(
        default=None, description="replaces the user's pinned facts (persona facts stay)"
    )
