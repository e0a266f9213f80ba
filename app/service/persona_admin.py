"""`PersonaAdmin`: the persona routes' operations over the caller's view of the catalog
(`UserPersonas`). Adding, replacing and deleting an upload and setting its lorebook write the
store and parse uploads, and a card's PNG is encoded: blocking work, run here in a worker
thread so the routes stay parse -> call -> serialize and the event loop never waits on it.

Reads of the catalog (list, get) are in memory and stay on the loop: the routes call
`UserPersonas` for them directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.errors import InvalidFieldError
from app.personas.book import normalize_book
from app.personas.card_export import persona_to_png
from app.personas.catalog import CatalogEntry, Upload, UserPersonas
from app.personas.world_info import world_info_to_book


def book_of(body: dict[str, Any]) -> dict[str, Any]:
    """A lorebook from a SillyTavern World Info file (entries keyed by uid) or from a V3
    `character_book` (entries in a list, each with its keys); 422 when it has no entries."""
    entries = body.get("entries")
    if isinstance(entries, list) and all(isinstance(e, dict) and "keys" in e for e in entries):
        book = normalize_book(body, "book", "book")
    else:
        book = world_info_to_book(body, "world info")
    if not book["entries"]:
        raise InvalidFieldError("the lorebook has no entries", "entries")
    return book


class PersonaAdmin:
    """One per request: it holds the caller's view of the catalog and nothing else."""

    def __init__(self, personas: UserPersonas) -> None:
        self.personas = personas

    async def add(self, body: Upload, persona_id: str | None = None) -> CatalogEntry:
        """A new upload (YAML/JSON or a Character Card); the id the query gives wins."""
        persona = await asyncio.to_thread(self.personas.add, body, persona_id)
        return self.personas.entry(persona.id)

    async def replace(self, persona_id: str, body: Upload) -> CatalogEntry:
        await asyncio.to_thread(self.personas.replace, persona_id, body)
        return self.personas.entry(persona_id)

    async def delete(self, persona_id: str) -> None:
        await asyncio.to_thread(self.personas.delete, persona_id)

    async def set_book(self, persona_id: str, book: dict[str, Any] | None) -> CatalogEntry:
        """Give the upload this lorebook (None removes it)."""
        await asyncio.to_thread(self.personas.set_book, persona_id, book)
        return self.personas.entry(persona_id)

    async def card_png(self, persona_id: str) -> bytes:
        """The persona as a Character Card V3 PNG (the image encoding is CPU work)."""
        persona = self.personas.get(persona_id)
        return await asyncio.to_thread(persona_to_png, persona)
