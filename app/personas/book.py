"""A persona's lorebook in the Character Card V3 `character_book` shape: a light structural
check and the V2 -> V3 normalization, on the way in (card import, YAML, World Info).

The book is kept verbatim otherwise: the lore scanner (memory/lore) owns its semantics, and
export must give back every field, unknown ones and `extensions` included.

V2 and V3 books differ only in what an entry must carry: V3 makes `use_regex` required (V2 has
no regex keys) and lets `id` be a string as well as a number. A V2 entry therefore becomes V3 by
gaining `use_regex: false`; every other field means the same in both.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from app.personas.errors import PersonaError
from memory.lore.errors import LoreError
from memory.lore.model import LoreBook, LoreEntry

# the fields V3 requires, with the value a missing one means (V2 cards and hand-written YAML
# often leave them out; filling them here means every reader sees one shape)
_ENTRY_DEFAULTS: dict[str, Any] = {
    "extensions": {},
    "enabled": True,
    "insertion_order": 0,
    "use_regex": False,
}


def _declared(model: type[BaseModel], kind: Any) -> tuple[str, ...]:
    """The fields the lore model (memory/lore/model.py) declares as `kind` or `kind | None`."""
    names = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if get_origin(ann) in (Union, types.UnionType):
            members = [a for a in get_args(ann) if a is not type(None)]
            ann = members[0] if len(members) == 1 else None
        if ann == kind:
            names.append(name)
    return tuple(names)


# Which field has which type is declared once, in the lore model, and LoreBook.of validates it
# (at the end of normalize_book). The checks here come first because they are stricter (JSON
# types as the card has them: pydantic would coerce "yes" to true and "5" to 5), add what a card
# requires (`entries`, `keys`, `content`), and name the problem in a card's words.
_BOOL_FIELDS = _declared(LoreEntry, bool)
_NUMBER_FIELDS = _declared(LoreEntry, int)
_KEY_FIELDS = _declared(LoreEntry, list[str])
_OBJECT_FIELDS = _declared(LoreEntry, dict[str, Any])
_BOOK_NUMBERS = _declared(LoreBook, int)
_BOOK_OBJECTS = _declared(LoreBook, dict[str, Any])


def normalize_book(book: Any, source: str, where: str = "data.character_book") -> dict[str, Any]:
    """A copy of `book` in the V3 shape, or PersonaError naming the first bad field.

    Checked: an object with an `entries` list; each entry an object with `keys` (a list of
    strings) and `content` (a string); when present, `secondary_keys` a list of strings, the
    flags booleans and the orders numbers (a scanner would otherwise fail at the first turn).
    """
    if not isinstance(book, Mapping):
        raise PersonaError(source, where, "must be an object with an `entries` list")
    entries = book.get("entries")
    if entries is None:
        raise PersonaError(source, f"{where}.entries", "is required (a list of entries)")
    if not isinstance(entries, list):
        raise PersonaError(source, f"{where}.entries", "must be a list")
    for name in _BOOK_NUMBERS:
        value = book.get(name)
        if value is not None and not _is_number(value):
            raise PersonaError(source, f"{where}.{name}", "must be a number")
    for name in _BOOK_OBJECTS:
        if not isinstance(book.get(name, {}), Mapping):
            raise PersonaError(source, f"{where}.{name}", "must be an object")
    out = copy.deepcopy(dict(book))
    out.setdefault("extensions", {})
    out["entries"] = [
        _normalize_entry(entry, source, f"{where}.entries.{i}") for i, entry in enumerate(entries)
    ]
    try:  # what the scanner would refuse at the first turn (a bad regex, a limit) is refused now
        LoreBook.of(out)
    except LoreError as exc:
        problem = str(exc).removeprefix(f"{exc.field}: ")
        raise PersonaError(
            source, f"{where}.{exc.field}" if exc.field else where, problem
        ) from None
    return out


def _normalize_entry(entry: Any, source: str, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise PersonaError(source, where, "must be an object")
    if "keys" not in entry:
        raise PersonaError(source, f"{where}.keys", "is required (a list of strings)")
    for name in _KEY_FIELDS:  # `keys` is required: present, so None is not a list
        value = entry.get(name)
        if name != "keys" and value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise PersonaError(source, f"{where}.{name}", "must be a list of strings")
    if not isinstance(entry.get("content"), str):  # required, where the model defaults to ""
        raise PersonaError(source, f"{where}.content", "must be a string")
    for name in _BOOL_FIELDS:
        if entry.get(name) is not None and not isinstance(entry[name], bool):
            raise PersonaError(source, f"{where}.{name}", "must be true or false")
    for name in _NUMBER_FIELDS:
        if entry.get(name) is not None and not _is_number(entry[name]):
            raise PersonaError(source, f"{where}.{name}", "must be a number")
    for name in _OBJECT_FIELDS:
        if not isinstance(entry.get(name, {}), Mapping):
            raise PersonaError(source, f"{where}.{name}", "must be an object")
    out = copy.deepcopy(dict(entry))
    for name, default in _ENTRY_DEFAULTS.items():
        if out.get(name) is None:
            out[name] = copy.deepcopy(default)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
