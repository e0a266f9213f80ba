"""Uploaded lorebooks in the store: private to their owner, attached to sessions, edited in
one transaction, gone with their session or user (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from app.store.errors import Conflict, LimitExceeded, NotFound
from app.store.lore import MAX_BOOKS_PER_SESSION
from app.store.repo import Store

BOOK = {"name": "Ashvale", "entries": [{"keys": ["dragon"], "content": "Ember.", "id": 1}]}


def test_a_book_round_trips_and_is_private(store: Store) -> None:
    a = store.get_or_create_user("a").id
    b = store.get_or_create_user("b").id
    book = store.create_book(a, BOOK)
    assert book.id.startswith("lb_") and book.name == "Ashvale"
    assert store.get_book(a, book.id).data == BOOK
    assert [x.id for x in store.list_books(a)] == [book.id] and store.list_books(b) == []
    with pytest.raises(NotFound):
        store.get_book(b, book.id)
    with pytest.raises(NotFound):
        store.update_book(b, book.id, lambda d: d)
    with pytest.raises(NotFound):
        store.delete_book(b, book.id)
    edited = store.update_book(a, book.id, lambda d: {**d, "name": "Ashvale II"})
    assert edited.name == "Ashvale II" and edited.data["entries"] == BOOK["entries"]
    store.delete_book(a, book.id)
    with pytest.raises(NotFound):
        store.get_book(a, book.id)


def test_attach_detach_and_isolation(store: Store) -> None:
    a = store.get_or_create_user("a").id
    b = store.get_or_create_user("b").id
    sa = store.create_session(a, "assistant", "buffer", {}).id
    sb = store.create_session(b, "assistant", "buffer", {}).id
    book = store.create_book(a, BOOK)
    second = store.create_book(a, {**BOOK, "name": "Second"})
    store.attach_book(a, sa, book.id)
    store.attach_book(a, sa, second.id)
    assert [x.id for x in store.session_books(a, sa)] == [book.id, second.id]
    with pytest.raises(Conflict):
        store.attach_book(a, sa, book.id)
    with pytest.raises(NotFound):  # B's session with A's book, A's session by B
        store.attach_book(b, sb, book.id)
    with pytest.raises(NotFound):
        store.session_books(b, sa)
    store.detach_book(a, sa, book.id)
    with pytest.raises(NotFound):
        store.detach_book(a, sa, book.id)
    store.delete_book(a, second.id)  # its attachments go with it
    assert store.session_books(a, sa) == []
    store.attach_book(a, sa, book.id)
    store.delete_session(a, sa)
    assert store.get_book(a, book.id).id == book.id  # the book outlives the session


def test_books_per_session_are_limited(store: Store) -> None:
    a = store.get_or_create_user("a").id
    sid = store.create_session(a, "assistant", "buffer", {}).id
    for _ in range(MAX_BOOKS_PER_SESSION):
        store.attach_book(a, sid, store.create_book(a, BOOK).id)
    with pytest.raises(LimitExceeded):
        store.attach_book(a, sid, store.create_book(a, BOOK).id)
