"""SillyTavern World Info files <-> the Character Card V3 `character_book` shape.

A World Info file (what SillyTavern's "Export" of a lorebook writes) is
`{"entries": {"<uid>": {uid, key, keysecondary, comment, content, constant, selective,
selectiveLogic, order, position, disable, probability, depth, group, ...}}, ...}`.
The mapping follows SillyTavern's own (`convertWorldInfoToCharacterBook` on card export and
`convertCharacterBook` on card import), so a book moves between the two as SillyTavern moves it:

- uid -> id, key -> keys, keysecondary -> secondary_keys, comment, content, constant, selective,
  order -> insertion_order, disable -> enabled (negated), position 0 -> "before_char", any
  other -> "after_char" (the exact number in extensions.position), caseSensitive ->
  case_sensitive when set;
- every other SillyTavern field into the entry's `extensions` under SillyTavern's own names
  (selectiveLogic 0..3 = AND ANY, NOT ALL, NOT ANY, AND ALL; depth, probability, group,
  sticky, cooldown, delay, ... see ST_EXTENSIONS), so SillyTavern reads them back;
- fields neither knows (a newer SillyTavern) into extensions["st_fields"], restored as they were.

One difference on purpose: SillyTavern writes `use_regex: true` on every entry ("ST keys are
always regex") although a plain key is matched as text and only a `/pattern/flags` key is a
regex. We write `use_regex: false` and keep keys verbatim, so a V3 reader does not turn
"Mr. Smith" into a pattern; a `/.../` key keeps SillyTavern's meaning for the lore scanner.

Book-level fields (name, description, scan_depth, token_budget, recursive_scanning,
extensions) have no place in a World Info file; we write them at its top level (SillyTavern
ignores them) and read them back. `originalData` (SillyTavern's copy of the card book a World
Info file was made from) is dropped: it duplicates the entries and can be stale.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from app.personas.book import normalize_book
from app.personas.errors import PersonaError

# World Info field -> extension name (SillyTavern's), with the default SillyTavern assumes
ST_EXTENSIONS: dict[str, tuple[str, Any]] = {
    "position": ("position", 0),
    "excludeRecursion": ("exclude_recursion", False),
    "displayIndex": ("display_index", None),
    "probability": ("probability", 100),
    "useProbability": ("useProbability", True),
    "depth": ("depth", 4),
    "selectiveLogic": ("selectiveLogic", 0),
    "outletName": ("outlet_name", ""),
    "group": ("group", ""),
    "groupOverride": ("group_override", False),
    "groupWeight": ("group_weight", 100),
    "preventRecursion": ("prevent_recursion", False),
    "delayUntilRecursion": ("delay_until_recursion", False),
    "scanDepth": ("scan_depth", None),
    "matchWholeWords": ("match_whole_words", None),
    "useGroupScoring": ("use_group_scoring", None),
    "caseSensitive": ("case_sensitive", None),
    "automationId": ("automation_id", ""),
    "role": ("role", 0),
    "vectorized": ("vectorized", False),
    "sticky": ("sticky", None),
    "cooldown": ("cooldown", None),
    "delay": ("delay", None),
    "matchPersonaDescription": ("match_persona_description", False),
    "matchCharacterDescription": ("match_character_description", False),
    "matchCharacterPersonality": ("match_character_personality", False),
    "matchCharacterDepthPrompt": ("match_character_depth_prompt", False),
    "matchScenario": ("match_scenario", False),
    "matchCreatorNotes": ("match_creator_notes", False),
    "triggers": ("triggers", []),
    "ignoreBudget": ("ignore_budget", False),
}
# World Info fields mapped to V3 entry fields (handled one by one below)
_CORE = {"uid", "key", "keysecondary", "comment", "content", "constant", "selective", "order"}
_CORE |= {"disable", "extensions", "addMemo", "id"}
# V3 entry fields SillyTavern has no place for: carried as World Info fields of the same name
_V3_ONLY = ("name", "priority", "use_regex")
_BOOK_FIELDS = ("name", "description", "scan_depth", "token_budget", "recursive_scanning")
UNKNOWN_KEY = "st_fields"
_WHERE = "entries"


def world_info_to_book(
    world: Any, source: str = "world info", name: str | None = None
) -> dict[str, Any]:
    """A V3 `character_book` from a World Info file (a dict). PersonaError names a bad field."""
    if not isinstance(world, Mapping):
        raise PersonaError(source, None, "a World Info file is a JSON object with `entries`")
    entries = world.get("entries")
    if isinstance(entries, list):  # a few exporters write a list; accept it as SillyTavern does
        entries = {str(i): e for i, e in enumerate(entries)}
    if not isinstance(entries, Mapping):
        raise PersonaError(source, _WHERE, "must be an object of entries keyed by uid")
    book: dict[str, Any] = {"entries": []}
    for field in _BOOK_FIELDS:
        if field in world:
            book[field] = copy.deepcopy(world[field])
    if name is not None or "name" not in book:
        book["name"] = name or ""
    book["extensions"] = copy.deepcopy(world.get("extensions") or {})
    for index, (uid, entry) in enumerate(entries.items()):
        book["entries"].append(_entry_to_v3(entry, uid, index, source, f"{_WHERE}.{uid}"))
    return normalize_book(book, source, "book")


def _entry_to_v3(entry: Any, uid: str, index: int, source: str, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise PersonaError(source, where, "must be an object")
    for field in ("key", "keysecondary"):
        value = entry.get(field, [])
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise PersonaError(source, f"{where}.{field}", "must be a list of strings")
    if not isinstance(entry.get("content", ""), str):
        raise PersonaError(source, f"{where}.content", "must be a string")
    extensions = entry.get("extensions") or {}
    if not isinstance(extensions, Mapping):
        raise PersonaError(source, f"{where}.extensions", "must be an object")
    position = entry.get("position", 0)
    out: dict[str, Any] = {
        # a V3 string id we exported rides beside the uid; otherwise the uid is the id
        "id": entry["id"] if "id" in entry else entry.get("uid", _int_or(uid, index)),
        "keys": list(entry.get("key", [])),
        "secondary_keys": list(entry.get("keysecondary", [])),
        "comment": entry.get("comment", ""),
        "content": entry.get("content", ""),
        "constant": bool(entry.get("constant", False)),
        "selective": bool(entry.get("selective", True)),
        "insertion_order": entry.get("order", 100),
        "enabled": not entry.get("disable", False),
        "position": "before_char" if position == 0 else "after_char",
        "use_regex": False,
    }
    if isinstance(entry.get("caseSensitive"), bool):
        out["case_sensitive"] = entry["caseSensitive"]
    ext = copy.deepcopy(dict(extensions))
    for field, (ext_name, default) in ST_EXTENSIONS.items():
        ext[ext_name] = copy.deepcopy(entry.get(field, default))
    if "addMemo" in entry:
        ext["add_memo"] = entry["addMemo"]
    unknown = {
        k: copy.deepcopy(v)
        for k, v in entry.items()
        if k not in _CORE and k not in ST_EXTENSIONS and k not in _V3_ONLY
    }
    if unknown:
        ext[UNKNOWN_KEY] = unknown
    for field in _V3_ONLY:
        if field in entry:
            out[field] = copy.deepcopy(entry[field])
    out["extensions"] = ext
    return out


def book_to_world_info(book: Mapping[str, Any], source: str = "book") -> dict[str, Any]:
    """A World Info file from a V3 `character_book` (checked first). Entries are keyed by
    their uid: the entry's numeric id when it has one, else its position in the list."""
    book = normalize_book(book, source, "book")
    world: dict[str, Any] = {"entries": {}}
    # an entry's numeric id is its uid; the others (string ids, none, a repeated number) take
    # the lowest numbers no entry claims, so every uid is unique and numeric ids stay put
    ids = [e.get("id") for e in book["entries"]]
    numeric = [i if isinstance(i, int) and not isinstance(i, bool) else None for i in ids]
    claimed = {i for i in numeric if i is not None and numeric.count(i) == 1}
    free = (n for n in range(len(ids) + len(claimed) + 1) if n not in claimed)
    for entry, uid in zip(book["entries"], numeric, strict=True):
        if uid is None or uid not in claimed:
            uid = next(free)
        world["entries"][str(uid)] = _entry_to_st(entry, uid)
    for field in _BOOK_FIELDS:
        if field in book:
            world[field] = copy.deepcopy(book[field])
    if book.get("extensions"):
        world["extensions"] = copy.deepcopy(book["extensions"])
    return world


def _entry_to_st(entry: Mapping[str, Any], uid: int) -> dict[str, Any]:
    ext = copy.deepcopy(dict(entry.get("extensions") or {}))
    default_position = 0 if entry.get("position", "before_char") == "before_char" else 1
    out: dict[str, Any] = {
        "uid": uid,
        "key": list(entry["keys"]),
        "keysecondary": list(entry.get("secondary_keys") or []),
        "comment": entry.get("comment", ""),
        "content": entry["content"],
        "constant": bool(entry.get("constant", False)),
        "selective": bool(entry.get("selective", False)),
        "order": entry.get("insertion_order", 100),
        "disable": not entry.get("enabled", True),
    }
    for field, (ext_name, default) in ST_EXTENSIONS.items():
        if field == "position":
            default = default_position
        elif field == "caseSensitive" and isinstance(entry.get("case_sensitive"), bool):
            default = entry["case_sensitive"]
        out[field] = ext.pop(ext_name, copy.deepcopy(default))
    out["addMemo"] = ext.pop("add_memo", bool(out["comment"]))
    out.update(ext.pop(UNKNOWN_KEY, None) or {})
    for field in _V3_ONLY:
        if field in entry and not (field == "use_regex" and entry[field] is False):
            out[field] = copy.deepcopy(entry[field])
    if entry.get("id") is not None and entry.get("id") != uid:
        out["id"] = entry["id"]  # a string id (V3 allows it): kept beside the numeric uid
    if ext:
        out["extensions"] = ext  # whatever else the entry's extensions held
    return out


def _int_or(value: str, fallback: int) -> int:
    try:
        return int(value)
    except ValueError:
        return fallback
