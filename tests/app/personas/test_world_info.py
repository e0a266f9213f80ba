"""SillyTavern World Info files <-> V3 character_book, on SillyTavern's own export shape."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.personas.errors import PersonaError
from app.personas.world_info import ST_EXTENSIONS, book_to_world_info, world_info_to_book

FIXTURES = Path(__file__).parent / "fixtures"
WORLD = json.loads((FIXTURES / "st_world_info.json").read_text(encoding="utf-8"))
CARD = json.loads((FIXTURES / "card_v3_book.json").read_text(encoding="utf-8"))


def test_st_world_info_becomes_a_v3_book_as_sillytavern_maps_it() -> None:
    book = world_info_to_book(WORLD, "eldoria.json", name="Eldoria")
    assert book["name"] == "Eldoria" and book["extensions"] == {}
    first, council, always = book["entries"]
    assert first["id"] == 0 and first["keys"] == ["Eldoria", "kingdom"]
    assert first["position"] == "before_char" and first["enabled"] is True
    assert first["insertion_order"] == 100 and first["comment"] == "The kingdom"
    assert first["use_regex"] is False  # plain keys stay text (ST writes true: see module doc)
    assert council["secondary_keys"] == ["vote", "law"] and council["selective"] is True
    ext = council["extensions"]
    assert ext["selectiveLogic"] == 3  # AND ALL
    assert ext["position"] == 4 and council["position"] == "after_char"  # @depth
    assert (ext["depth"], ext["probability"], ext["group"]) == (2, 80, "politics")
    assert (ext["sticky"], ext["cooldown"], ext["delay"]) == (3, 2, 1)
    assert ext["scan_depth"] == 3 and ext["match_whole_words"] is True
    assert council["case_sensitive"] is True and ext["case_sensitive"] is True
    assert ext["exclude_recursion"] is True and ext["prevent_recursion"] is True
    assert always["id"] == 5 and always["constant"] is True and always["enabled"] is False
    assert always["extensions"]["ignore_budget"] is True
    # a field SillyTavern has and the mapping does not know is kept for the way back
    assert always["extensions"]["st_fields"] == {
        "characterFilter": {"isExclude": False, "names": [], "tags": []}
    }


def test_world_info_round_trips_unchanged() -> None:
    assert book_to_world_info(world_info_to_book(WORLD)) == {**WORLD, "name": ""}


@pytest.mark.parametrize("st_field", sorted(ST_EXTENSIONS))
def test_every_st_field_survives_world_info_book_world_info(st_field: str) -> None:
    back = book_to_world_info(world_info_to_book(WORLD))
    for uid, entry in WORLD["entries"].items():
        assert back["entries"][uid][st_field] == entry[st_field], (uid, st_field)


def test_a_card_book_round_trips_through_world_info() -> None:
    book = CARD["data"]["character_book"]
    again = world_info_to_book(book_to_world_info(book))
    for key in ("name", "description", "scan_depth", "token_budget", "recursive_scanning"):
        assert again[key] == book[key]
    assert again["extensions"] == book["extensions"]
    for before, after in zip(book["entries"], again["entries"], strict=True):
        for field, value in before.items():
            if field == "extensions":  # gains SillyTavern's fields, keeps its own values
                assert after[field] | value == after[field]
            else:
                assert after[field] == value, field


def test_string_ids_and_missing_ids_get_unique_uids() -> None:
    book = {
        "entries": [
            {"keys": ["a"], "content": "A", "id": "alpha"},
            {"keys": ["b"], "content": "B"},
            {"keys": ["c"], "content": "C", "id": 1},
        ]
    }
    world = book_to_world_info(book)
    assert len(world["entries"]) == 3
    assert world["entries"]["0"]["id"] == "alpha"  # a string id rides beside its uid
    assert [e["uid"] for e in world["entries"].values()] == [0, 2, 1]  # id 1 keeps uid 1
    assert [e["id"] for e in world_info_to_book(world)["entries"]] == ["alpha", 2, 1]


def test_entries_as_a_list_are_accepted() -> None:
    world = {"entries": [{"key": ["x"], "content": "X"}]}
    assert world_info_to_book(world)["entries"][0]["keys"] == ["x"]


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    world = copy.deepcopy(WORLD)
    target = world
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return world


@pytest.mark.parametrize(
    ("world", "field", "problem"),
    [
        ([], None, "JSON object with `entries`"),
        ({"entries": "x"}, "entries", "keyed by uid"),
        ({}, "entries", "keyed by uid"),
        (_broken(["entries", "1"], "text"), "entries.1", "must be an object"),
        (_broken(["entries", "0", "key"], "Eldoria"), "entries.0.key", "list of strings"),
        (_broken(["entries", "5", "keysecondary"], [1]), "entries.5.keysecondary", "strings"),
        (_broken(["entries", "0", "content"], None), "entries.0.content", "must be a string"),
        (_broken(["entries", "0", "extensions"], [1]), "entries.0.extensions", "an object"),
    ],
)
def test_malformed_world_info_names_the_field(world: Any, field: str, problem: str) -> None:
    with pytest.raises(PersonaError) as e:
        world_info_to_book(world, "w.json")
    assert e.value.field == field and problem in e.value.problem


def test_a_malformed_book_is_refused_on_export() -> None:
    with pytest.raises(PersonaError, match="keys"):
        book_to_world_info({"entries": [{"content": "no keys"}]})
