"""A `character_book` read for the scanner: V3 fields, SillyTavern's extensions, limits, and
errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from memory.lore.errors import LoreError
from memory.lore.model import (
    MAX_CONTENT_CHARS,
    MAX_ENTRIES,
    MAX_KEY_CHARS,
    LoreBook,
    SelectiveLogic,
)

V3_BOOK: dict[str, Any] = {
    "name": "Ashvale",
    "description": "The valley and its dragon",
    "scan_depth": 4,
    "token_budget": 300,
    "recursive_scanning": True,
    "extensions": {"made_by": "a tool"},
    "entries": [
        {
            "keys": ["Ember", "용"],
            "content": "Ember is a red dragon who sleeps under Ashvale.",
            "extensions": {"selectiveLogic": 3, "sticky": 2, "match_whole_words": None},
            "enabled": True,
            "insertion_order": 10,
            "case_sensitive": False,
            "use_regex": False,
            "constant": False,
            "name": "Ember",
            "priority": 5,
            "id": 7,
            "comment": "the dragon",
            "selective": True,
            "secondary_keys": ["cave"],
            "position": "before_char",
            "a_field_from_the_future": [1, 2],
        }
    ],
}


def test_every_v3_field_is_read_and_unknown_ones_are_kept() -> None:
    book = LoreBook.of(V3_BOOK)
    e = book.entries[0]
    assert (book.depth, book.token_budget, book.recursive_scanning) == (4, 300, True)
    assert e.logic is SelectiveLogic.AND_ALL and e.sticky == 2 and e.whole_words
    assert e.rank == (5, 10) and e.label == "Ember" and book.entry_ids() == ["7"]
    dumped = book.model_dump(exclude_unset=True)
    assert dumped == V3_BOOK  # nothing lost on the way through


def test_defaults_of_a_minimal_entry() -> None:
    book = LoreBook.of({"entries": [{"keys": ["x"], "content": "y"}]})
    e = book.entries[0]
    assert book.depth == 2 and not book.recursive_scanning and book.token_budget is None
    assert e.enabled and not e.constant and e.logic is SelectiveLogic.AND_ANY
    assert not e.is_case_sensitive and e.whole_words and book.entry_ids() == ["0"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"entries": [{"keys": "dragon"}]}, "entries.0.keys"),
        (
            {"entries": [{"keys": ["x"], "content": "c" * (MAX_CONTENT_CHARS + 1)}]},
            "entries.0.content",
        ),
        ({"entries": [{"keys": ["k" * (MAX_KEY_CHARS + 1)]}]}, "entries.0.keys.0"),
        ({"entries": [{"keys": ["ok"], "secondary_keys": ["/(/"]}]}, "entries.0.secondary_keys.0"),
        ({"entries": [{"keys": ["x"]}] * (MAX_ENTRIES + 1)}, "entries"),
        ({"entries": [{"keys": ["x"], "enabled": "maybe"}]}, "entries.0.enabled"),
        ({"scan_depth": -1, "entries": []}, "scan_depth"),
    ],
)
def test_a_bad_book_is_an_error_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(LoreError) as exc:
        LoreBook.of(data)
    assert exc.value.field == field


def test_a_book_must_be_an_object() -> None:
    with pytest.raises(LoreError, match="JSON object"):
        LoreBook.of([1, 2])
