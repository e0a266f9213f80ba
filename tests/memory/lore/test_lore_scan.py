"""Which entries fire and why: selective logic (every mode), constants, enabled flags, scan
depth, recursion and its limit, timed effects (sticky, cooldown, delay)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from memory.lore.model import MAX_RECURSION, ActiveBook, LoreBook
from memory.lore.scan import scan
from memory.lore.timed import after_turn
from memory.types import Context, ContextPart, LoreTimer, StoredMessage

T0 = datetime(2026, 12, 1, 9, 0)


def book(*entries: dict[str, Any], **fields: Any) -> list[ActiveBook]:
    data = {"entries": [{"content": f"entry {i}", **e} for i, e in enumerate(entries)], **fields}
    return [ActiveBook(id="b", book=LoreBook.of(data))]


def msgs(*texts: str) -> list[StoredMessage]:
    return [
        StoredMessage(
            id=i + 1, role=("user", "assistant")[i % 2], content=t, tokens=5, created_at=T0
        )
        for i, t in enumerate(texts)
    ]


def fired(
    books: list[ActiveBook], new: str, history: list[StoredMessage] | None = None, **kw: Any
) -> list[str]:
    return [h.firing.entry for h in scan(books, history or [], new, **kw)]


@pytest.mark.parametrize(
    ("logic", "text", "expected"),
    [
        (0, "the dragon sleeps in the cave", True),  # AND ANY: one secondary is enough
        (0, "the dragon sleeps", False),
        (3, "the dragon sleeps in the cave by the river", True),  # AND ALL
        (3, "the dragon sleeps in the cave", False),
        (2, "the dragon sleeps", True),  # NOT ANY: none of them
        (2, "the dragon sleeps by the river", False),
        (1, "the dragon sleeps in the cave", True),  # NOT ALL: not every one of them
        (1, "the dragon sleeps in the cave by the river", False),
    ],
)
def test_selective_logic(logic: int, text: str, expected: bool) -> None:
    books = book(
        {
            "keys": ["dragon"],
            "secondary_keys": ["cave", "river"],
            "selective": True,
            "extensions": {"selectiveLogic": logic},
        }
    )
    assert bool(fired(books, text)) is expected


def test_secondary_keys_are_ignored_when_the_entry_is_not_selective() -> None:
    books = book({"keys": ["dragon"], "secondary_keys": ["cave"], "selective": False})
    assert fired(books, "a dragon") == ["0"]


def test_the_reason_names_the_key_and_the_message() -> None:
    books = book({"keys": ["Ember", "용"], "id": "ember"}, scan_depth=3)
    hits = scan(books, msgs("I met Ember yesterday.", "Tell me more."), "what now?")
    assert [(h.firing.key, h.firing.message_id) for h in hits] == [("Ember", 1)]
    assert hits[0].firing.why == "key 'Ember' in message #1"
    hits = scan(books, [], "용한테 물어봐")
    assert hits[0].firing.why == "key '용' in the new message"


def test_constant_and_disabled_entries() -> None:
    books = book(
        {"keys": [], "constant": True, "id": "c"},
        {"keys": ["dragon"], "enabled": False, "id": "off"},
        {"keys": ["dragon"], "content": "   ", "id": "blank"},
    )
    hits = scan(books, [], "a dragon")
    assert [(h.firing.entry, h.firing.reason) for h in hits] == [("c", "constant")]


def test_scan_depth_counts_the_new_message_and_the_ones_before() -> None:
    history = msgs("the dragon", "ok", "fine")
    assert fired(book({"keys": ["dragon"]}, scan_depth=3), "hi", history) == []
    assert fired(book({"keys": ["dragon"]}, scan_depth=4), "hi", history) == ["0"]
    assert fired(book({"keys": ["dragon"]}, scan_depth=0), "the dragon") == []
    # an entry's own depth (SillyTavern's extensions.scan_depth) wins over the book's
    deep = book({"keys": ["dragon"], "extensions": {"scan_depth": 4}}, scan_depth=1)
    assert fired(deep, "hi", history) == ["0"]


def test_recursion_fires_entries_named_in_fired_content_up_to_the_limit() -> None:
    chain = [{"keys": [f"k{i}"], "content": f"see k{i + 1}", "id": f"e{i}"} for i in range(6)]
    assert fired(book(*chain), "k0") == ["e0"]  # recursion off: the book decides
    on = scan(book(*chain, recursive_scanning=True), [], "k0")
    assert [h.firing.entry for h in on] == [f"e{i}" for i in range(MAX_RECURSION + 1)]
    assert on[1].firing.reason == "recursion" and on[1].firing.via == "b:e0"
    assert "in the content of entry" in on[1].firing.why


def test_recursion_flags_of_sillytavern_entries() -> None:
    books = book(
        {"keys": ["a"], "content": "mentions b and c", "id": "a"},
        {"keys": ["b"], "id": "b", "extensions": {"exclude_recursion": True}},
        {
            "keys": ["c"],
            "content": "mentions d",
            "id": "c",
            "extensions": {"prevent_recursion": True},
        },
        {"keys": ["d"], "id": "d"},
        {"keys": ["a"], "id": "late", "extensions": {"delay_until_recursion": True}},
        recursive_scanning=True,
    )
    # b: not by recursion; c fires but its content triggers nothing; late waits for recursion,
    # and "a" is in no entry's content, so it never fires
    assert fired(books, "a") == ["a", "c"]


def _after(hits: list[Any], timers: dict[str, LoreTimer]) -> dict[str, LoreTimer]:
    part = ContextPart(kind="lore", tokens=1, messages=[], fired=[h.firing for h in hits])
    return after_turn(timers, Context(budget=1, total_tokens=1, parts=[part]))


def test_sticky_keeps_an_entry_then_cooldown_holds_it_off() -> None:
    books = book({"keys": ["dragon"], "id": "d", "extensions": {"sticky": 2, "cooldown": 2}})
    timers: dict[str, LoreTimer] = {}
    hits = scan(books, [], "a dragon", timers, now=1)
    assert hits[0].firing.sticky_until == 3 and hits[0].firing.cooldown_until == 5
    timers = _after(hits, timers)  # the reply was generated: the windows start
    sticky = scan(books, [], "nothing here", timers, now=3)
    assert sticky[0].firing.reason == "sticky"
    timers = _after(sticky, timers)  # a sticky firing does not restart anything
    assert timers["b:d"].sticky_until == 3
    assert scan(books, [], "a dragon", timers, now=5) == []  # cooling down
    assert fired(books, "a dragon", timers=timers, now=7) == ["d"]  # free again


def test_a_dry_run_starts_no_timer() -> None:
    books = book({"keys": ["dragon"], "extensions": {"sticky": 4}})
    scan(books, [], "a dragon", {}, now=1)
    assert fired(books, "nothing", timers={}, now=3) == []


def test_delay_waits_for_the_chat_to_be_long_enough() -> None:
    books = book({"keys": ["dragon"], "extensions": {"delay": 5}})
    assert fired(books, "a dragon", msgs("a", "b")) == []
    assert fired(books, "a dragon", msgs("a", "b", "c", "d")) == ["0"]


def test_books_and_entries_fire_in_book_order() -> None:
    a = book({"keys": ["x"], "id": "a1"})[0]
    b = ActiveBook(id="c", book=LoreBook.of({"entries": [{"keys": ["x"], "content": "y"}]}))
    assert [(h.firing.book, h.firing.entry) for h in scan([a, b], [], "x")] == [
        ("b", "a1"),
        ("c", "0"),
    ]
