"""PersonaAdmin: the persona routes' blocking work (the store, parsing, PNG encoding) runs in a
worker thread and answers with the catalog's entry; `book_of` reads both lorebook forms."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support.server import PERSONAS

from app.errors import InvalidFieldError
from app.personas.catalog import PersonaCatalog
from app.personas.loader import load_personas
from app.service.persona_admin import PersonaAdmin, book_of
from app.store.repo import Store

BOOK = {"entries": [{"keys": ["lighthouse"], "content": "The lighthouse is on the hill."}]}


def _admin(store: Store) -> PersonaAdmin:
    catalog = PersonaCatalog(load_personas(PERSONAS))
    catalog.attach_store(store)
    return PersonaAdmin(catalog.for_user(store.get_or_create_user("alice").id))


async def test_uploads_run_off_the_loop_and_answer_with_the_entry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = _admin(store)
    threads: list[int] = []
    save = store.save_persona

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return save(*args, **kwargs)

    monkeypatch.setattr(store, "save_persona", spy)
    body = {"id": "nabi", "name": "Nabi", "system_prompt": "You are Nabi, a cat."}
    entry = await admin.add(body)
    assert (entry.persona.id, entry.source) == ("nabi", "uploaded")
    assert threads and threads[0] != threading.get_ident()
    entry = await admin.set_book("nabi", book_of(BOOK))
    assert entry.persona.character_book is not None
    assert (await admin.card_png("nabi")).startswith(b"\x89PNG")
    await admin.delete("nabi")
    assert "nabi" not in admin.personas


def test_a_lorebook_without_entries_is_refused() -> None:
    with pytest.raises(InvalidFieldError) as caught:
        book_of({"entries": {}})
    assert caught.value.field == "entries"
