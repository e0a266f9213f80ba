"""Request and response bodies of the HTTP API: the OpenAPI document. The routes and the parts
behind them: docs/ARCHITECTURE.md §1.12; the route table: README.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import BaseModel, ConfigDict, Field

from app.store.records import MessageStatus, Role
from memory.relationship import (
    DEFAULT_RELATIONSHIP_TOKENS,
    MAX_FACTS,
    MAX_RELATIONSHIP_TOKENS,
    RelationshipFact,
    SessionGist,
)
from memory.strategies._lore import DEFAULT_LORE_TOKENS, MAX_LORE_TOKENS
from memory.types import Context, MemoryScope, PinnedFact, RemovedFact, SummaryVersion

# Integers from a request that reach the database (or the sampler's uint64 key) must fit a
# signed 64-bit column: anything larger would raise OverflowError deep in the driver (a 500).
# Usable as a path or query parameter type, or a model field.
MAX_DB_INT = 2**63 - 1
DbId = Annotated[int, Interval(ge=1, le=MAX_DB_INT)]  # a row id (ids start at 1)
DbOffset = Annotated[int, Interval(ge=0, le=MAX_DB_INT)]  # an offset or count
Seed = Annotated[int, Interval(ge=0, le=MAX_DB_INT)]


class ErrorDetail(BaseModel):
    """OpenAI's error object (message, type, param, code) plus our dotted `field`."""

    message: str
    type: str = Field(description="invalid_request_error, requests (429) or server_error")
    param: str | None = Field(default=None, description="the bad param, OpenAI-style: a[0].b")
    code: str
    field: str | None = Field(default=None, description="the bad field, dotted: a.0.b")


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

# The OpenAI-compatible routes answer 400 where ours answer 422 (and for a field over a size
# limit or a context overflow), as OpenAI does: see app/errors.py.
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "invalid or unsupported param (error.param)"},
    404: {"model": ErrorBody, "description": "unknown model (model_not_found) or session"},
    409: ERRORS[409],
    413: {"model": ErrorBody, "description": "request body too large"},
    503: ERRORS[503],
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
    max_tokens_limit: int | None = Field(
        default=None, description="the largest max_tokens a request may ask for"
    )


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
    scope: MemoryScope | None = Field(
        default=None,
        description="what the session remembers beyond itself: 'session' (nothing), 'persona' "
        "(the relationship: every session of this user with this persona), 'user' (all of the "
        "user's sessions); default: the persona's setting, else 'persona'",
    )
    relationship_tokens: int | None = Field(
        default=None,
        ge=0,
        le=MAX_RELATIONSHIP_TOKENS,
        description="cap on the relationship part (facts to remember always, gists of earlier "
        f"sessions) in tokens; 0 leaves it out; default {DEFAULT_RELATIONSHIP_TOKENS}",
    )
    lore_tokens: int | None = Field(
        default=None,
        ge=0,
        le=MAX_LORE_TOKENS,
        description="cap on the lore part (lorebook entries that fire) in tokens, and never "
        f"more than a third of the room left; 0 leaves lore out; default {DEFAULT_LORE_TOKENS}",
    )

    def params(self) -> dict[str, Any]:
        """Everything but the strategy name: the service's params and the strategy's own."""
        out = dict(self.model_extra or {})
        for name in ("budget_tokens", "scope", "relationship_tokens", "lore_tokens"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


class SessionCreate(BaseModel):
    persona: str = Field(default="assistant", min_length=1, max_length=100)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    title: str | None = Field(default=None, max_length=200)


class SessionPatch(BaseModel):
    title: str | None = Field(default=None, max_length=200)
    memory: MemoryConfig | None = None


class SessionMemoryOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # scope, relationship_tokens, the strategy's params

    strategy: str
    budget_tokens: int | None = None


class SessionOut(BaseModel):
    id: str
    persona: str
    title: str | None
    memory: SessionMemoryOut
    created_at: datetime
    updated_at: datetime
    greeting: str | None = Field(
        default=None,
        description="what the persona says first: her greeting for a user she knows (the "
        "persona's returning_greeting) once the relationship holds anything, else her greeting",
    )


class SessionList(BaseModel):
    sessions: list[SessionOut]


# -- messages ---------------------------------------------------------------------------------


class GenerationOptions(BaseModel):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: Seed | None = None
    # an empty stop string would match everywhere: refused here, not deep in the engine (a 503)
    stop: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, max_length=8)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(
        default=None, gt=0, le=2, description="> 1 discourages tokens already said (1: off)"
    )


class MessageCreate(GenerationOptions):
    content: str = Field(min_length=1)
    stream: bool = False


class DraftIn(BaseModel):
    content: str = Field(
        default="",
        description="what the user has typed so far (empty: nothing yet); never stored",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="the coming reply's max_tokens, when the client will send one (the "
        "Context keeps its room); else the last turn's, else the persona's",
    )


class DraftOut(BaseModel):
    warming: bool = Field(description="is the session's next prompt being prefilled for it")
    reason: str | None = Field(default=None, description="why not, when it is not")
    max_tokens: int | None = Field(default=None, description="the reply room it keeps")


class UsageOut(BaseModel):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class MessageOut(BaseModel):
    id: int
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    tokens: int = 0
    context_id: str | None = None
    usage: UsageOut | None = Field(
        default=None,
        description="a generated reply's token usage, as the done event had it (null for user "
        "messages, imported history and replies stored before it was kept)",
    )


class MessageList(BaseModel):
    messages: list[MessageOut]
    has_more: bool = False


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
    # stored turns of a recalling session not yet in the index (it catches up in the background)
    indexing: int = 0
    forgotten: list[int]
    # issue 15: the user's words are kept when automation or an edit replaces them
    summary_edited: bool = False
    summary_versions: list[SummaryVersion] = Field(
        default_factory=list,
        description="previous summaries, newest first (restore one with POST "
        ".../memory/summary/restore)",
    )
    pinned_removed: list[RemovedFact] = Field(
        default_factory=list,
        description="your pinned facts that were removed, newest first (POST "
        ".../memory/pinned/{fact_id}/restore pins one again)",
    )
    notice: str | None = Field(
        default=None, description="what automation last did to your summary, until dismissed"
    )
    index_unavailable: str | None = Field(
        default=None, description="why the recallable items cannot be listed now, if they cannot"
    )


class SummaryRestore(BaseModel):
    version: int = Field(default=0, ge=0, description="index in summary_versions; 0 the newest")


class PinnedIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    id: str | None = Field(default=None, max_length=64)


# -- relationships ------------------------------------------------------------------------------
class RelationshipSessionOut(BaseModel):
    """A session of the relationship: one the persona's memory of the user reaches."""

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime


class RelationshipOut(BaseModel):
    persona: str
    facts: list[RelationshipFact]
    gists: list[SessionGist]
    sessions: list[RelationshipSessionOut] = Field(default_factory=list)
    recall_after_id: int = 0
    updated_at: datetime | None = None


class RelationshipList(BaseModel):
    relationships: list[RelationshipOut]


class FactIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    session_id: str | None = Field(
        default=None, max_length=40, description="the session it was said or pinned in"
    )


class GistIn(BaseModel):
    session_id: str = Field(min_length=1, max_length=40)
    text: str = Field(max_length=4000, description="empty: the gist is dropped")


class RelationshipPatch(BaseModel):
    facts: list[FactIn] | None = Field(
        default=None, max_length=MAX_FACTS, description="replaces the facts to remember always"
    )
    gists: list[GistIn] | None = Field(
        default=None,
        max_length=500,
        description="edits these sessions' gists (user-written "
        "gists are never overwritten by extraction)",
    )


class MemoryPatch(BaseModel):
    summary: str | None = Field(default=None, max_length=100_000)
    pinned: list[PinnedIn] | None = Field(
        default=None, description="replaces the user's pinned facts (persona facts stay)"
    )
