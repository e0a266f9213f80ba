"""V3 card export, and import -> export -> import: every character_book field of the V3 spec
unchanged (one test per field), the card fields we map, and the ones we keep unmapped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.personas.card_export import V3_DEFAULTS, persona_to_card, persona_to_png
from app.personas.card_png import read_card_png
from app.personas.cards import card_to_persona
from app.personas.loader import load_personas, parse_persona_upload
from app.personas.model import Persona

FIXTURES = Path(__file__).parent / "fixtures"
PERSONAS = Path(__file__).resolve().parents[3] / "personas"


def _card(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


CARD = _card("card_v3_book.json")
BOOK = CARD["data"]["character_book"]
# the V3 spec's Lorebook and entry fields (all present in the fixture)
BOOK_FIELDS = ["name", "description", "scan_depth", "token_budget", "recursive_scanning"]
BOOK_FIELDS += ["extensions"]
ENTRY_FIELDS = ["keys", "content", "extensions", "enabled", "insertion_order", "case_sensitive"]
ENTRY_FIELDS += ["use_regex", "constant", "name", "priority", "id", "comment", "selective"]
ENTRY_FIELDS += ["secondary_keys", "position"]


def _again(card: dict[str, Any], png: bool) -> dict[str, Any]:
    """import -> export -> import -> export, as JSON or through a PNG."""
    persona = card_to_persona(card, "card.json")
    if png:
        back, _ = parse_persona_upload(persona_to_png(persona), "card.png")
        return persona_to_card(back)
    return persona_to_card(card_to_persona(persona_to_card(persona), "export.json"))


@pytest.mark.parametrize("png", [False, True], ids=["json", "png"])
@pytest.mark.parametrize("field", BOOK_FIELDS)
def test_book_fields_round_trip(field: str, png: bool) -> None:
    assert field in BOOK
    assert _again(CARD, png)["data"]["character_book"][field] == BOOK[field]


@pytest.mark.parametrize("png", [False, True], ids=["json", "png"])
@pytest.mark.parametrize("field", ENTRY_FIELDS)
def test_entry_fields_round_trip(field: str, png: bool) -> None:
    entries = _again(CARD, png)["data"]["character_book"]["entries"]
    assert any(field in e for e in BOOK["entries"])
    assert [e.get(field) for e in entries] == [e.get(field) for e in BOOK["entries"]]


def test_the_whole_book_and_every_card_field_come_back() -> None:
    out = _again(CARD, png=False)
    assert out["spec"] == "chara_card_v3" and out["spec_version"] == "3.0"
    assert out["data"]["character_book"] == BOOK
    for field, value in CARD["data"].items():
        if field == "extensions":  # ours gains extensions.memento; theirs are kept as they are
            assert {k: v for k, v in out["data"][field].items() if k != "memento"} == value
        else:
            assert out["data"][field] == value, field
    assert set(V3_DEFAULTS) <= set(out["data"])


def test_a_v2_card_comes_back_as_v3_with_its_fields() -> None:
    v2 = _card("card_v2.json")
    out = persona_to_card(card_to_persona(v2))
    for field, value in v2["data"].items():
        if field == "character_book":
            # V2 -> V3: each entry gains use_regex: false, nothing else changes
            assert out["data"][field]["entries"] == [
                {**e, "use_regex": False} for e in value["entries"]
            ]
        elif field != "extensions":
            assert out["data"][field] == value, field
    assert out["data"]["group_only_greetings"] == []


def test_an_export_is_a_fixed_point() -> None:
    once = persona_to_card(card_to_persona(CARD))
    assert persona_to_card(card_to_persona(once)) == once


def test_edits_are_exported_and_memento_fields_round_trip() -> None:
    persona = card_to_persona(CARD)
    edited = Persona.model_validate(
        {
            **persona.model_dump(),
            "greeting": "Hi {{user}}, welcome to Haegol.",
            "pinned_facts": ["{{char}} never leaves Haegol."],
            "style_rules": ["Short replies.", "No emoji."],
            "returning_greeting": "Back again, {{user}}?",
            "user_name": "Traveller",
        }
    )
    card = persona_to_card(edited)
    data = card["data"]
    assert data["first_mes"] == "Hi {{user}}, welcome to Haegol."
    assert data["post_history_instructions"] == "Short replies.\nNo emoji."
    assert data["description"] == CARD["data"]["description"]  # the prompt did not change
    assert data["extensions"]["memento"]["pinned_facts"] == ["{{char}} never leaves Haegol."]
    back = card_to_persona(card)
    for field in ("greeting", "pinned_facts", "style_rules", "returning_greeting", "user_name"):
        assert getattr(back, field) == getattr(edited, field), field
    # post_history_instructions edited in another tool after our export: the card's text wins
    data["post_history_instructions"] = "Be terse."
    assert card_to_persona(card).style_rules == ["Be terse."]


@pytest.mark.parametrize("pid", sorted(load_personas(PERSONAS)))
def test_every_builtin_persona_exports_and_imports_unchanged(pid: str) -> None:
    persona = load_personas(PERSONAS)[pid]
    card = persona_to_card(persona)
    back = card_to_persona(card)
    assert back.id == pid
    same = {"card"}  # the imported one remembers the card it came from
    assert back.model_dump(exclude=same) == persona.model_dump(exclude=same)
    assert card["data"]["system_prompt"] == persona.system_prompt
    assert card["data"]["description"] == ""  # held by the system prompt already
    png_back = card_to_persona(read_card_png(persona_to_png(persona), "p.png", 256_000))
    assert png_back.model_dump(exclude=same) == persona.model_dump(exclude=same)
