"""Lorebooks (World Info): the books a user uploads (private to them, like uploaded personas)
and their entries, the books in force for a session (its persona's own, then the attached
ones), attach/detach, and a dry run of which entries a message would fire, and why.

A book is the Character Card V3 `character_book` object, stored as sent (every entry gets an
`id` if it has none, so it can be addressed); memory/lore says how it is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field

from app.deps import ChatDep, CurrentUser, PersonasDep, StoreDep
from app.errors import ConflictError
from app.lore import (
    checked,
    entry_error,
    entry_position,
    next_entry_id,
    persona_book,
)
from app.schemas import ERRORS
from app.store.lore import LoreBookRecord
from memory.lore.errors import LoreError
from memory.types import LoreFiring

router = APIRouter(prefix="/v1/lorebooks", tags=["lore"], responses=ERRORS)
session_router = APIRouter(prefix="/v1/sessions", tags=["lore"], responses=ERRORS)

BookBody = Annotated[
    dict[str, Any],
    Body(description="a Character Card V3 `character_book` object: name, entries[], ..."),
]
EntryBody = Annotated[dict[str, Any], Body(description="a `character_book` entry")]


class BookSummary(BaseModel):
    id: str
    name: str
    entries: int
    created_at: datetime
    updated_at: datetime


class BookOut(BookSummary):
    book: dict[str, Any]  # the character_book object as stored


class SessionBook(BaseModel):
    id: str  # "persona:<id>" for the persona's own book
    name: str
    source: str  # "persona" or "attached"
    entries: int


class AttachIn(BaseModel):
    book: str = Field(min_length=1, max_length=40, description="the id of one of your books")


class DryRunIn(BaseModel):
    content: str = Field(min_length=1, description="the message to test")


class DryRunOut(BaseModel):
    fired: list[LoreFiring]  # shown, in the order the part shows them
    dropped: list[LoreFiring]  # fired but over a budget
    tokens: int  # the lore part's size
    notes: list[str]


def _count(data: dict[str, Any]) -> int:
    entries = data.get("entries")
    return len(entries) if isinstance(entries, list) else 0


def summary(r: LoreBookRecord) -> BookSummary:
    return BookSummary(
        id=r.id,
        name=r.name,
        entries=_count(r.data),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def full(r: LoreBookRecord) -> BookOut:
    return BookOut(**summary(r).model_dump(), book=r.data)


# -- books ----------------------------------------------------------------------------------


@router.get("", response_model=dict[str, list[BookSummary]])
async def list_books(user: CurrentUser, store: StoreDep) -> dict[str, list[BookSummary]]:
    return {"lorebooks": [summary(r) for r in await asyncio.to_thread(store.list_books, user.id)]}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BookOut)
async def create_book(body: BookBody, user: CurrentUser, store: StoreDep) -> BookOut:
    return full(await asyncio.to_thread(store.create_book, user.id, checked(body)))


@router.get("/{book_id}", response_model=BookOut)
async def get_book(book_id: str, user: CurrentUser, store: StoreDep) -> BookOut:
    return full(await asyncio.to_thread(store.get_book, user.id, book_id))


@router.put("/{book_id}", response_model=BookOut)
async def replace_book(book_id: str, body: BookBody, user: CurrentUser, store: StoreDep) -> BookOut:
    data = checked(body)
    return full(await asyncio.to_thread(store.update_book, user.id, book_id, lambda _: data))


@router.delete("/{book_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_book(book_id: str, user: CurrentUser, store: StoreDep) -> Response:
    await asyncio.to_thread(store.delete_book, user.id, book_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- entries --------------------------------------------------------------------------------


@router.get("/{book_id}/entries", response_model=dict[str, list[dict[str, Any]]])
async def list_entries(book_id: str, user: CurrentUser, store: StoreDep) -> dict[str, Any]:
    record = await asyncio.to_thread(store.get_book, user.id, book_id)
    return {"entries": record.data.get("entries", [])}


@router.get("/{book_id}/entries/{entry_id}", response_model=dict[str, Any])
async def get_entry(book_id: str, entry_id: str, user: CurrentUser, store: StoreDep) -> Any:
    data = (await asyncio.to_thread(store.get_book, user.id, book_id)).data
    return data["entries"][entry_position(data, entry_id)]


def _edit(data: dict[str, Any], position: int, entry: dict[str, Any]) -> dict[str, Any]:
    entries = list(data.get("entries", []))
    if position == len(entries):
        entries.append(entry)
    else:
        entries[position] = entry
    try:
        return checked({**data, "entries": entries})
    except LoreError as exc:
        raise entry_error(exc, position) from None


async def _change(
    store: StoreDep,
    user_id: str,
    book_id: str,
    entry_id: str | None,
    make: Callable[[dict[str, Any] | None], dict[str, Any]],
) -> dict[str, Any]:
    """Edit one entry in the store's update transaction (`make` gets the stored entry, None
    for a new one, and gives the new one); the entry as stored. 404/409/422 as it goes."""
    out: dict[str, Any] = {}

    def change(data: dict[str, Any]) -> dict[str, Any]:
        entries = data.get("entries", [])
        if entry_id is None:  # a new entry
            position = len(entries)
            new = make(None)
            if new.get("id") is None:
                new = {**new, "id": next_entry_id(entries)}
            elif any(str(e.get("id")) == str(new["id"]) for e in entries):
                raise ConflictError(f"entry {new['id']!r} already exists", field="id")
        else:
            position = entry_position(data, entry_id)
            new = {**make(entries[position]), "id": entries[position].get("id")}
        result = _edit(data, position, new)
        out.update(result["entries"][position])
        return result

    await asyncio.to_thread(store.update_book, user_id, book_id, change)
    return out


@router.post(
    "/{book_id}/entries", status_code=status.HTTP_201_CREATED, response_model=dict[str, Any]
)
async def add_entry(book_id: str, body: EntryBody, user: CurrentUser, store: StoreDep) -> Any:
    return await _change(store, user.id, book_id, None, lambda _: dict(body))


@router.put("/{book_id}/entries/{entry_id}", response_model=dict[str, Any])
async def replace_entry(
    book_id: str, entry_id: str, body: EntryBody, user: CurrentUser, store: StoreDep
) -> Any:
    return await _change(store, user.id, book_id, entry_id, lambda _: dict(body))


@router.patch("/{book_id}/entries/{entry_id}", response_model=dict[str, Any])
async def patch_entry(
    book_id: str, entry_id: str, body: EntryBody, user: CurrentUser, store: StoreDep
) -> Any:
    """Change some fields of an entry (`{"enabled": false}` turns it off)."""
    return await _change(store, user.id, book_id, entry_id, lambda old: {**(old or {}), **body})


@router.delete("/{book_id}/entries/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_entry(book_id: str, entry_id: str, user: CurrentUser, store: StoreDep) -> Response:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        position = entry_position(data, entry_id)
        entries = [e for i, e in enumerate(data["entries"]) if i != position]
        return {**data, "entries": entries}

    await asyncio.to_thread(store.update_book, user.id, book_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- a session's books ---------------------------------------------------------------------


@session_router.get("/{session_id}/lore", response_model=dict[str, list[SessionBook]])
async def session_books(
    session_id: str, user: CurrentUser, store: StoreDep, personas: PersonasDep
) -> dict[str, list[SessionBook]]:
    """The books in force: the persona's own (if it has one), then the attached ones."""
    session = await asyncio.to_thread(store.get_session, user.id, session_id)
    persona = personas.get(session.persona_id)
    out: list[SessionBook] = []
    own, _ = persona_book(persona)
    if own is not None:
        name = own.book.name or f"{persona.name}'s lorebook"
        out.append(
            SessionBook(id=own.id, name=name, source="persona", entries=len(own.book.entries))
        )
    for r in await asyncio.to_thread(store.session_books, user.id, session_id):
        out.append(SessionBook(id=r.id, name=r.name, source="attached", entries=_count(r.data)))
    return {"books": out}


@session_router.post(
    "/{session_id}/lore",
    status_code=status.HTTP_201_CREATED,
    response_model=dict[str, list[SessionBook]],
)
async def attach_book(
    session_id: str, body: AttachIn, user: CurrentUser, store: StoreDep, personas: PersonasDep
) -> dict[str, list[SessionBook]]:
    """Attach one of your books (409 if it already is; 404 for a book that is not yours)."""
    await asyncio.to_thread(store.attach_book, user.id, session_id, body.book)
    return await session_books(session_id, user, store, personas)


@session_router.delete("/{session_id}/lore/{book_id}", status_code=status.HTTP_204_NO_CONTENT)
async def detach_book(
    session_id: str, book_id: str, user: CurrentUser, store: StoreDep
) -> Response:
    await asyncio.to_thread(store.detach_book, user.id, session_id, book_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@session_router.post("/{session_id}/lore/dry-run", response_model=DryRunOut)
async def lore_dry_run(
    session_id: str, body: DryRunIn, user: CurrentUser, chat: ChatDep
) -> DryRunOut:
    """Which entries `content` would fire in this session now, and why: the lore part of the
    Context a message with it would get (budgets included). Nothing is stored."""
    ctx = await chat.dry_run(user.id, session_id, body.content)
    part = next((p for p in ctx.parts if p.kind == "lore"), None)
    return DryRunOut(
        fired=part.fired if part else [],
        dropped=part.dropped if part else [],
        tokens=part.tokens if part else 0,
        notes=[n for n in ctx.notes if n.startswith("lore")],
    )
