"""What memory strategies take and give. The service and the store speak these types too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal, Protocol, get_args

from pydantic import BaseModel, Field

from app.llm.types import GenerationParams
from memory.lore.model import ActiveBook

PartKind = Literal[
    "persona", "pinned", "relationship", "lore", "summary", "kept", "recent", "recalled", "new"
]
# The KV cache serves the longest unchanged prefix, so parts go from the most stable to the
# least. The relationship memory changes only between sessions: the stable head. Kept recalled
# turns (issue 13) change at most when the recent buffer's front moves, and rarely then; the
# summary changes whenever it does (evicted turns are folded in), and so does the recent
# buffer; what recall finds anew changes every turn: after the recent buffer, nearest the
# question, where re-prefilling it costs only itself. Lore (issue 16) follows the relationship:
# its entries stay while their keys are within the scan depth (a few messages), so the same
# set is active for turns on end and the prefix through it is reused; a change of the set
# re-prefills what follows, as a summary change does (memory/strategies/_lore.py).
PART_ORDER: tuple[PartKind, ...] = (
    "persona",
    "pinned",
    "relationship",
    "lore",
    "kept",
    "summary",
    "recent",
    "recalled",
    "new",
)
RECALLED_KINDS: tuple[PartKind, ...] = ("kept", "recalled")
MemoryScope = Literal["session", "persona", "user"]
SCOPES: tuple[MemoryScope, ...] = get_args(MemoryScope)
Role = Literal["system", "user", "assistant"]


class LLM(Protocol):
    """The narrow slice of the engine memory needs (structurally satisfied by app.llm engines)."""

    context_window: int

    def count(self, messages: Sequence[Mapping[str, str]]) -> int: ...
    def count_message(self, message: Mapping[str, str]) -> int: ...
    def count_overhead(self) -> int: ...
    async def complete(
        self, messages: Sequence[Mapping[str, str]], params: GenerationParams
    ) -> str: ...


class StoredMessage(BaseModel):
    """A message already in the store (completed user/assistant turns only)."""

    id: int
    role: Literal["user", "assistant", "system"]
    content: str
    tokens: int  # engine.count_message() of this message, computed once when stored
    created_at: datetime
    # the session it belongs to (the store sets it; None in tests and in-process benchmarks,
    # where it means "the asking session")
    session_id: str | None = None


class ContextMessage(BaseModel):
    id: int | None = None  # set only on verbatim stored messages (recalled, recent)
    role: Role
    content: str
    created_at: datetime | None = None
    # where a recalled turn or a relationship item came from, when not this session
    session_id: str | None = None


class LoreFiring(BaseModel):
    """Why a lorebook entry is in the lore part (or was dropped from it): the inspector's line."""

    book: str  # "persona:<id>" for the persona's own book, else an uploaded book's id
    entry: str  # the entry's `id` (or its position in the book when it has none)
    name: str = ""  # its name, comment or first key, for people
    reason: Literal["key", "constant", "sticky", "recursion"]
    key: str | None = None  # the key that fired
    message_id: int | None = None  # the stored message it was found in (None: the new one)
    via: str | None = None  # recursion: "book:entry" whose content held the key
    secondary: list[str] = Field(default_factory=list)  # secondary keys that met the logic
    why: str = ""  # all of the above in words
    tokens: int = 0
    at: int = 0  # the message number of the turn (the chat's length with the new message)
    # timed effects to remember after the turn (memory/lore/timed.py): active through this
    # message number, then not again through the other
    sticky_until: int | None = None
    cooldown_until: int | None = None


class LoreTimer(BaseModel):
    """A lore entry's timed effects in a session, in message numbers."""

    sticky_until: int | None = None
    cooldown_until: int | None = None


class ContextPart(BaseModel):
    kind: PartKind
    tokens: int
    messages: list[ContextMessage]
    covers: list[int] = Field(default_factory=list)  # summary parts: the message ids summarized
    # kept parts: how many of the messages each chunk holds, in order (a chunk is the turns
    # recall added together; each renders on its own so appending one keeps the text before)
    chunks: list[int] = Field(default_factory=list)
    # recalled parts: the ids of the turns shown, most relevant first (shown in the strategy's
    # recall_order: best last, by day, or in time order)
    ranked: list[int] = Field(default_factory=list)
    # lore parts: why each shown entry fired (one per message, in order), and the entries that
    # fired but did not fit the budget (lowest priority first out)
    fired: list[LoreFiring] = Field(default_factory=list)
    dropped: list[LoreFiring] = Field(default_factory=list)

    def to_messages(self) -> list[dict[str, str]]:
        """What the engine sees of this part. Recalled turns go in as one system message, one
        line each: a template wrapper per turn would cost ~5 tokens, a sixth of a typical turn,
        so joining fits ~15% more of them. The inspector still lists them one by one."""
        if (self.kind in RECALLED_KINDS or self.kind in ("relationship", "lore")) and self.messages:
            return [{"role": "system", "content": "\n".join(m.content for m in self.messages)}]
        return [{"role": m.role, "content": m.content} for m in self.messages]


class Context(BaseModel):
    """The assembled prompt: what the engine sees and what the inspector shows. One object."""

    id: str | None = None
    budget: int
    total_tokens: int  # exact templated count, generation prompt included
    parts: list[ContextPart]
    # what went wrong while assembling it, for the inspector (e.g. recall was unavailable)
    notes: list[str] = Field(default_factory=list)

    def to_messages(self) -> list[dict[str, str]]:
        return [m for p in self.parts for m in p.to_messages()]


class PinnedFact(BaseModel):
    id: str
    text: str
    source: Literal["persona", "style", "user"] = "user"


class SummaryVersion(BaseModel):
    """A summary that was replaced, kept so the user can restore it (memory/user_edits.py)."""

    text: str
    covers: list[int] = Field(default_factory=list)
    edited: bool = False  # written (or restored) by the user, not by the summarizer
    replaced_at: datetime
    reason: str  # what replaced it, in words the Memory tab shows


class RemovedFact(BaseModel):
    """A user-pinned fact that was removed, kept so it can be pinned again."""

    fact: PinnedFact
    removed_at: datetime


class MemoryState(BaseModel):
    """Per-session memory that survives restarts; persisted by the store as JSON."""

    summary: str = ""
    summary_covers: list[int] = Field(default_factory=list)  # message ids folded into summary
    summary_failures: int = 0  # consecutive failed summary attempts (retried next observe)
    # a backlog's summary while it is being written, a few chunks per observe: published as
    # `summary` once the backlog is done, so that the prompt's head changes once, not per step
    summary_draft: str | None = None
    draft_covers: list[int] = Field(default_factory=list)  # ids folded into the draft
    buffer_start_id: int | None = None  # chunked eviction: first message id still in the buffer
    pinned: list[PinnedFact] = Field(default_factory=list)  # user-pinned facts
    forgotten: list[int] = Field(default_factory=list)  # message ids the user told us to forget
    # recalled turns kept in place across turns (issue 13), chunk by chunk: the "kept" part
    kept: list[list[int]] = Field(default_factory=list)
    kept_age: int = 0  # replies since the kept turns were last chosen anew
    # issue 15: what the user wrote is never destroyed by automation (memory/user_edits.py)
    summary_edited: bool = False  # the summary is the user's words (an edit or a restore)
    summary_versions: list[SummaryVersion] = Field(default_factory=list)  # newest first
    pinned_removed: list[RemovedFact] = Field(default_factory=list)  # newest first
    notice: str | None = None  # what automation last did to the user's memory, for the page
    # lore entries' sticky/cooldown windows, by "book:entry" (memory/lore/timed.py)
    lore_timers: dict[str, LoreTimer] = Field(default_factory=dict)


# What MemoryStrategy.upkeep changes: saved over a state that turns changed meanwhile
SUMMARY_FIELDS = (
    "summary",
    "summary_covers",
    "summary_failures",
    "summary_draft",
    "draft_covers",
    "summary_edited",
    "summary_versions",
    "notice",
)


class SessionInfo(BaseModel):
    id: str
    user_id: str
    persona_id: str


class ScopeSession(BaseModel):
    """Another session whose turns this one may recall (memory scopes, memory/relationship.py)."""

    session: SessionInfo
    history: list[StoredMessage]  # its completed turns minus what its user made it forget


class AssembleRequest(BaseModel):
    session: SessionInfo
    system_prompt: str  # the persona's prompt, rendered
    # her example dialogue as transcript lines: shown after the prompt as far as the budget
    # affords (memory/persona.py)
    example_dialogue: list[str] = Field(default_factory=list)
    persona_pinned: list[PinnedFact] = Field(default_factory=list)  # persona facts + style rules
    history: list[StoredMessage]  # oldest first
    state: MemoryState
    new_message: str
    budget: int  # max templated prompt tokens (context window - max new tokens, or lower)
    # cross-session memory: other sessions' turns recall may search, and what the persona
    # remembers of the user (rendered; the relationship part, its own token cap)
    scope: list[ScopeSession] = Field(default_factory=list)
    relationship: list[ContextMessage] = Field(default_factory=list)
    relationship_tokens: int = 0
    # who speaks in recalled notes ("On 2 March 2024 아빠 said: ..."): the persona's names
    user_name: str = "User"
    assistant_name: str = "Assistant"
    # lorebooks in force (the persona's, then the ones attached to the session) and the lore
    # part's cap in tokens (memory/strategies/_lore.py)
    lore: list[ActiveBook] = Field(default_factory=list)
    lore_tokens: int = 512  # memory.strategies._lore.DEFAULT_LORE_TOKENS


class MemoryStrategyError(Exception):
    """Base for memory errors the API maps to HTTP statuses."""


class ContextOverflowError(MemoryStrategyError):
    """The persona + new message alone do not fit the budget (HTTP 413)."""

    def __init__(self, needed: int, budget: int, what: str = "message"):
        super().__init__(
            f"the {what} needs {needed} tokens with the persona prompt, but the context budget "
            f"is {budget} tokens"
        )
        self.needed, self.budget = needed, budget


class Recaller(Protocol):
    """Finds past turns relevant to a query (vector index + lexical fusion; memory/recall.py)."""

    async def recall(
        self,
        session: SessionInfo,
        query: str,
        history: Sequence[StoredMessage],
        exclude_ids: set[int],
        limit: int,
        scope: Sequence[ScopeSession] = (),
    ) -> list[int]:
        """Message ids from `history` and the scope's histories, most relevant first, none of
        `exclude_ids`."""
        ...

    async def observe(self, session: SessionInfo, messages: Sequence[StoredMessage]) -> None:
        """Index new stored messages (batched embedding)."""
        ...

    async def forget(self, session: SessionInfo, message_ids: Sequence[int] | None = None) -> None:
        """Drop the given messages (or the whole session) from the index."""
        ...
