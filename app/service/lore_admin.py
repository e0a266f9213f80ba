"""`LoreAdmin`: the lorebook operations of the lore routes. A user's books and their entries
(every edit validated inside the store's update transaction, so two edits never lose one
another), and the books in force for a session: its persona's own, then the attached ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import ConflictError
from app.lore import checked, entry_error, entry_position, next_entry_id, persona_book
from app.personas.catalog import UserPersonas
from app.service.store import AsyncStore
from app.store.lore import LoreBookRecord
from memory.lore.errors import LoreError


def entry_count(data: dict[str, Any]) -> int:
    entries = data.get("entries")
    return len(entries) if isinstance(entries, list) else 0


@dataclass
class BookInForce:
    """A book a session's turns read."""

    id: str  # "persona:<id>" for the persona's own book
    name: str
    source: str  # "persona" or "attached"
    entries: int


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


class LoreAdmin:
    def __init__(self, store: AsyncStore) -> None:
        self.store = store

    # -- books -------------------------------------------------------------------------------
    async def list_books(self, user_id: str) -> list[LoreBookRecord]:
        return await self.store.list_books(user_id)

    async def create_book(self, user_id: str, data: dict[str, Any]) -> LoreBookRecord:
        return await self.store.create_book(user_id, checked(data))

    async def get_book(self, user_id: str, book_id: str) -> LoreBookRecord:
        return await self.store.get_book(user_id, book_id)

    async def replace_book(
        self, user_id: str, book_id: str, data: dict[str, Any]
    ) -> LoreBookRecord:
        book = checked(data)
        return await self.store.update_book(user_id, book_id, lambda _: book)

    async def delete_book(self, user_id: str, book_id: str) -> None:
        await self.store.delete_book(user_id, book_id)

    # -- entries -----------------------------------------------------------------------------
    async def entries(self, user_id: str, book_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = (await self.get_book(user_id, book_id)).data.get(
            "entries", []
        )
        return entries

    async def entry(self, user_id: str, book_id: str, entry_id: str) -> dict[str, Any]:
        data = (await self.get_book(user_id, book_id)).data
        entry: dict[str, Any] = data["entries"][entry_position(data, entry_id)]
        return entry

    async def change_entry(
        self,
        user_id: str,
        book_id: str,
        entry_id: str | None,
        make: Callable[[dict[str, Any] | None], dict[str, Any]],
    ) -> dict[str, Any]:
        """Edit one entry in the store's update transaction (`make` gets the stored entry,
        None for a new one, and gives the new one); the entry as stored. 404/409/422 as it
        goes."""
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

        await self.store.update_book(user_id, book_id, change)
        return out

    async def delete_entry(self, user_id: str, book_id: str, entry_id: str) -> None:
        def change(data: dict[str, Any]) -> dict[str, Any]:
            position = entry_position(data, entry_id)
            entries = [e for i, e in enumerate(data["entries"]) if i != position]
            return {**data, "entries": entries}

        await self.store.update_book(user_id, book_id, change)

    # -- a session's books -------------------------------------------------------------------
    async def books_in_force(
        self, user_id: str, session_id: str, personas: UserPersonas
    ) -> list[BookInForce]:
        """The persona's own book (if it has one), then the attached ones."""
        session = await self.store.get_session(user_id, session_id)
        persona = personas.get(session.persona_id)
        out: list[BookInForce] = []
        own, _ = persona_book(persona)
        if own is not None:
            name = own.book.name or f"{persona.name}'s lorebook"
            out.append(BookInForce(own.id, name, "persona", len(own.book.entries)))
        for r in await self.store.session_books(user_id, session_id):
            out.append(BookInForce(r.id, r.name, "attached", entry_count(r.data)))
        return out

    async def attach(
        self, user_id: str, session_id: str, book_id: str, personas: UserPersonas
    ) -> list[BookInForce]:
        """Attach one of the user's books (409 if it already is; 404 for a book that is not
        theirs); the books in force then."""
        await self.store.attach_book(user_id, session_id, book_id)
        return await self.books_in_force(user_id, session_id, personas)

    async def detach(self, user_id: str, session_id: str, book_id: str) -> None:
        await self.store.detach_book(user_id, session_id, book_id)
