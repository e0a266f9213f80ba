"""The lorebooks in force for a session: its persona's own `character_book`, then the books
its user attached to it (app/store/lore.py), read for the scanner (memory/lore)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from app.errors import NotFoundError
from app.personas.model import Persona
from app.service.store import AsyncStore
from app.store.lore import LoreBookRecord
from app.store.records import SessionRecord
from memory.lore.errors import LoreError
from memory.lore.model import ActiveBook, LoreBook

log = logging.getLogger(__name__)

# Books read for the scanner, kept between turns: validating a 1,000-entry book and compiling
# its keys costs ~10 ms, a scan of it ~0.5 ms (benchmarks/lore.py). A persona's book is the
# same object while the persona is in the catalog (the entry holds the persona, so its id is
# not reused); an uploaded book changes only with its updated_at.
_CACHE_SIZE = 256
_persona_books: OrderedDict[int, tuple[Persona, ActiveBook]] = OrderedDict()
_stored_books: OrderedDict[tuple[str, datetime], ActiveBook] = OrderedDict()
_cache_lock = threading.Lock()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)


def persona_book_id(persona: Persona) -> str:
    return f"persona:{persona.id}"


def persona_book(persona: Persona) -> tuple[ActiveBook | None, str | None]:
    """The persona's book, or a note saying why it is not used: a card's book that does not
    validate (a regex of another dialect, say) costs the turn its lore, never the turn."""
    if not persona.character_book:
        return None, None
    cached = _persona_books.get(id(persona))
    if cached is not None and cached[0] is persona:
        return cached[1], None
    try:
        book = LoreBook.of(persona.character_book)
    except LoreError as exc:
        log.warning("persona %s: lorebook not used: %s", persona.id, exc)
        return None, f"lore: the persona's lorebook is not used: {exc}"
    active = ActiveBook(id=persona_book_id(persona), book=without_pinned(book, persona))
    _remember(_persona_books, id(persona), (persona, active))
    return active, None


def without_pinned(book: LoreBook, persona: Persona) -> LoreBook:
    """The book without the constant entries a card import already made pinned facts (an
    entry that is always in the context needs to be there once, and pinned facts come first)."""
    pinned = {f.strip() for f in persona.pinned_facts}
    twice = [i for i, e in enumerate(book.entries) if e.constant and e.content.strip() in pinned]
    if not twice:
        return book
    entries = [
        e.model_copy(update={"enabled": False}) if i in twice else e
        for i, e in enumerate(book.entries)
    ]
    return book.model_copy(update={"entries": entries})


def stored_book(rec: LoreBookRecord) -> ActiveBook:
    """An uploaded book read for the scanner (LoreError if it no longer validates)."""
    key = (rec.id, rec.updated_at)
    cached = _stored_books.get(key)
    if cached is None:
        cached = ActiveBook(id=rec.id, book=LoreBook.of(rec.data))
        _remember(_stored_books, key, cached)
    return cached


async def active_books(
    store: AsyncStore, session: SessionRecord, persona: Persona
) -> tuple[list[ActiveBook], list[str]]:
    """The session's books in force, and notes on any that could not be used."""
    books: list[ActiveBook] = []
    own, note = persona_book(persona)
    notes = [note] if note else []
    if own is not None:
        books.append(own)
    for rec in await store.session_books(session.user_id, session.id):
        try:
            books.append(stored_book(rec))
        except LoreError as exc:  # validated on upload; a later rule change must not break turns
            notes.append(f"lore: book {rec.id} is not used: {exc}")
    return books, notes


# -- editing an uploaded book (app/service/lore_admin.py calls these inside the store's
# update transaction) --------------------------------------------------------------------------


def with_ids(data: dict[str, Any]) -> dict[str, Any]:
    """The book with an `id` on every entry (the next free number where one is missing), so
    entries can be addressed; LoreError for two entries with one id. Everything else stays
    as given."""
    entries = data.get("entries")
    if not isinstance(entries, list):
        return data
    taken = [e.get("id") for e in entries if isinstance(e, dict) and e.get("id") is not None]
    seen: set[str] = set()
    for i, eid in enumerate(taken):
        if str(eid) in seen:
            raise LoreError(f"entries: two entries have the id {eid!r}", field=f"entries.{i}.id")
        seen.add(str(eid))
    next_id = next_entry_id(entries)
    out = []
    for e in entries:
        if isinstance(e, dict) and e.get("id") is None:
            e = {**e, "id": next_id}
            next_id += 1
        out.append(e)
    return {**data, "entries": out}


def next_entry_id(entries: list[Any]) -> int:
    numbers = [e.get("id") for e in entries if isinstance(e, dict)]
    return max(
        (n + 1 for n in numbers if isinstance(n, int) and not isinstance(n, bool)), default=0
    )


def checked(data: dict[str, Any]) -> dict[str, Any]:
    """A book to store: ids on every entry, validated (LoreError names the field)."""
    data = with_ids(data)
    LoreBook.of(data)
    return data


def entry_position(data: dict[str, Any], entry_id: str) -> int:
    for i, e in enumerate(data.get("entries", [])):
        if isinstance(e, dict) and str(e.get("id")) == entry_id:
            return i
    raise NotFoundError(f"entry {entry_id!r} not found in this lorebook", field="entry_id")


def entry_error(exc: LoreError, position: int) -> LoreError:
    """A book error about one entry, as the entry's own route names it ("keys.0", not
    "entries.5.keys.0")."""
    prefix = f"entries.{position}."
    field = exc.field or ""
    if field.startswith(prefix):
        field = field[len(prefix) :]
        message = str(exc).replace(prefix, "", 1)
        return LoreError(message, field=field)
    return exc
