"""Session export/import format: validation and message-id remapping of the memory state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.store.errors import InvalidData
from app.store.records import MessageRecord, MessageStatus, NewMessage, Role, SessionRecord
from memory.types import MemoryState

EXPORT_FORMAT: Final = "memento.session"
EXPORT_VERSION = 1


class ExportedSession(BaseModel):
    model_config = ConfigDict(extra="ignore")

    persona: str = Field(min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    strategy: str = Field(min_length=1, max_length=40)
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class ExportedMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int | None = None  # the id in the exporting store; memory state refers to it
    role: Role
    content: str
    tokens: int = Field(default=0, ge=0)
    status: MessageStatus = "complete"
    created_at: datetime | None = None


class ExportedBook(BaseModel):
    """A lorebook attached to the session, whole: the export moves to another server too."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]


class SessionExport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["memento.session"] = EXPORT_FORMAT
    version: int = Field(default=EXPORT_VERSION, ge=1, le=EXPORT_VERSION)
    session: ExportedSession
    messages: list[ExportedMessage] = Field(default_factory=list)
    memory: MemoryState = Field(default_factory=MemoryState)
    lorebooks: list[ExportedBook] = Field(default_factory=list)  # attached, in attach order


def export_data(
    session: SessionRecord,
    messages: list[MessageRecord],
    memory: MemoryState,
    books: Sequence[ExportedBook] = (),
) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "session": {
            "id": session.id,
            "persona": session.persona_id,
            "title": session.title,
            "strategy": session.strategy,
            # budget_tokens among the params, as in exports written before it got a column:
            # the format (and servers that read it) stay as they were
            "params": session.memory_params(),
            "created_at": session.created_at.isoformat(),
            "updated_at": session.updated_at.isoformat(),
        },
        "messages": [
            {
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "tokens": m.tokens,
                "status": m.status,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
        "memory": memory.model_dump(mode="json"),
        "lorebooks": [b.model_dump(mode="json") for b in books],
    }


def parse_export(data: Any) -> SessionExport:
    """Validate export data; InvalidData names the first bad field (e.g. messages.3.role)."""
    if not isinstance(data, dict):
        raise InvalidData("body", "a session export must be a JSON object")
    try:
        parsed = SessionExport.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidData(field, err["msg"]) from None
    ids = [m.id for m in parsed.messages if m.id is not None]
    if len(ids) != len(set(ids)):
        raise InvalidData("messages", "message ids must be unique")
    books = [b.id for b in parsed.lorebooks]
    if len(books) != len(set(books)):
        raise InvalidData("lorebooks", "lorebook ids must be unique")
    return parsed


def split_budget(params: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """An export's params -> (the strategy's params, budget_tokens): the session keeps the
    budget in a column of its own. InvalidData if it is not a positive integer."""
    rest = {k: v for k, v in params.items() if k != "budget_tokens"}
    budget = params.get("budget_tokens")
    if budget is not None and (
        not isinstance(budget, int) or isinstance(budget, bool) or budget < 1
    ):
        raise InvalidData("session.params.budget_tokens", "must be a positive integer")
    return rest, budget


def new_messages(parsed: SessionExport) -> list[NewMessage]:
    # a reply that was being generated when exported did not finish, and never will
    return [
        NewMessage(
            role=m.role,
            content=m.content,
            tokens=m.tokens,
            status="interrupted" if m.status == "pending" else m.status,
            created_at=m.created_at,
        )
        for m in parsed.messages
    ]


def remap_timers(state: MemoryState, book_ids: dict[str, str]) -> MemoryState:
    """Lore timers ("book:entry") follow books that were imported under a new id."""
    timers = {}
    for key, timer in state.lore_timers.items():
        book, sep, entry = key.partition(":")
        timers[f"{book_ids.get(book, book)}{sep}{entry}"] = timer
    return state.model_copy(update={"lore_timers": timers})


def remap_memory(state: MemoryState, old_to_new: dict[int, int]) -> MemoryState:
    """Rewrite message ids in the memory state to the importing store's ids. Ids that refer to
    no imported message are dropped; buffer_start_id moves to the first kept id at or after it."""
    covers = [old_to_new[i] for i in state.summary_covers if i in old_to_new]
    forgotten = [old_to_new[i] for i in state.forgotten if i in old_to_new]
    # kept recalled turns of this session only: another session's ids mean nothing here
    kept = [[old_to_new[i] for i in c if i in old_to_new] for c in state.kept]
    start: int | None = None
    if state.buffer_start_id is not None:
        later = sorted(o for o in old_to_new if o >= state.buffer_start_id)
        start = old_to_new[later[0]] if later else max(old_to_new.values(), default=0) + 1
    return state.model_copy(
        update={
            "summary_covers": covers,
            "forgotten": forgotten,
            "buffer_start_id": start,
            "kept": [c for c in kept if c],
            # a backlog's draft is written again from the published summary on
            "summary_draft": None,
            "draft_covers": [],
        }
    )
