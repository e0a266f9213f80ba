"""Lorebooks (World Info): the books a user uploads (private to them, like uploaded personas)
and their entries, the books in force for a session (its persona's own, then the attached
ones), attach/detach, and a dry run of which entries a message would fire, and why.

A book is the Character Card V3 `character_book` object, stored as sent (every entry gets an
`id` if it has none, so it can be addressed); memory/lore says how it is read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field

from app.deps import ChatDep, CurrentUser, LoreAdminDep, PersonasDep
from app.schemas import ERRORS
from app.service.lore_admin import BookInForce, entry_count
from app.store.lore import LoreBookRecord
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


def summary(r: LoreBookRecord) -> BookSummary:
    return BookSummary(
        id=r.id,
        name=r.name,
        entries=entry_count(r.data),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def full(r: LoreBookRecord) -> BookOut:
    return BookOut(**summary(r).model_dump(), book=r.data)


def books_out(books: list[BookInForce]) -> dict[str, list[SessionBook]]:
    return {
        "books": [
            SessionBook(id=b.id, name=b.name, source=b.source, entries=b.entries) for b in books
        ]
    }


# -- books ----------------------------------------------------------------------------------


@router.get("", response_model=dict[str, list[BookSummary]])
async def list_books(user: CurrentUser, admin: LoreAdminDep) -> dict[str, list[BookSummary]]:
    return {"lorebooks": [summary(r) for r in await admin.list_books(user.id)]}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BookOut)
async def create_book(body: BookBody, user: CurrentUser, admin: LoreAdminDep) -> BookOut:
    return full(await admin.create_book(user.id, body))


@router.get("/{book_id}", response_model=BookOut)
async def get_book(book_id: str, user: CurrentUser, admin: LoreAdminDep) -> BookOut:
    return full(await admin.get_book(user.id, book_id))


@router.put("/{book_id}", response_model=BookOut)
async def replace_book(
    book_id: str, body: BookBody, user: CurrentUser, admin: LoreAdminDep
) -> BookOut:
    return full(await admin.replace_book(user.id, book_id, body))


@router.delete("/{book_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_book(book_id: str, user: CurrentUser, admin: LoreAdminDep) -> Response:
    await admin.delete_book(user.id, book_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- entries --------------------------------------------------------------------------------


@router.get("/{book_id}/entries", response_model=dict[str, list[dict[str, Any]]])
async def list_entries(book_id: str, user: CurrentUser, admin: LoreAdminDep) -> dict[str, Any]:
    return {"entries": await admin.entries(user.id, book_id)}


@router.get("/{book_id}/entries/{entry_id}", response_model=dict[str, Any])
async def get_entry(book_id: str, entry_id: str, user: CurrentUser, admin: LoreAdminDep) -> Any:
    return await admin.entry(user.id, book_id, entry_id)


@router.post(
    "/{book_id}/entries", status_code=status.HTTP_201_CREATED, response_model=dict[str, Any]
)
async def add_entry(book_id: str, body: EntryBody, user: CurrentUser, admin: LoreAdminDep) -> Any:
    return await admin.change_entry(user.id, book_id, None, lambda _: dict(body))


@router.put("/{book_id}/entries/{entry_id}", response_model=dict[str, Any])
async def replace_entry(
    book_id: str, entry_id: str, body: EntryBody, user: CurrentUser, admin: LoreAdminDep
) -> Any:
    return await admin.change_entry(user.id, book_id, entry_id, lambda _: dict(body))


@router.patch("/{book_id}/entries/{entry_id}", response_model=dict[str, Any])
async def patch_entry(
    book_id: str, entry_id: str, body: EntryBody, user: CurrentUser, admin: LoreAdminDep
) -> Any:
    """Change some fields of an entry (`{"enabled": false}` turns it off)."""
    return await admin.change_entry(user.id, book_id, entry_id, lambda old: {**(old or {}), **body})


@router.delete("/{book_id}/entries/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_entry(
    book_id: str, entry_id: str, user: CurrentUser, admin: LoreAdminDep
) -> Response:
    await admin.delete_entry(user.id, book_id, entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- a session's books ---------------------------------------------------------------------


@session_router.get("/{session_id}/lore", response_model=dict[str, list[SessionBook]])
async def session_books(
    session_id: str, user: CurrentUser, admin: LoreAdminDep, personas: PersonasDep
) -> dict[str, list[SessionBook]]:
    """The books in force: the persona's own (if it has one), then the attached ones."""
    return books_out(await admin.books_in_force(user.id, session_id, personas))


@session_router.post(
    "/{session_id}/lore",
    status_code=status.HTTP_201_CREATED,
    response_model=dict[str, list[SessionBook]],
)
async def attach_book(
    session_id: str, body: AttachIn, user: CurrentUser, admin: LoreAdminDep, personas: PersonasDep
) -> dict[str, list[SessionBook]]:
    """Attach one of your books (409 if it already is; 404 for a book that is not yours)."""
    return books_out(await admin.attach(user.id, session_id, body.book, personas))


@session_router.delete("/{session_id}/lore/{book_id}", status_code=status.HTTP_204_NO_CONTENT)
async def detach_book(
    session_id: str, book_id: str, user: CurrentUser, admin: LoreAdminDep
) -> Response:
    await admin.detach(user.id, session_id, book_id)
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
