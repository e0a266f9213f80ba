"""SillyTavern Character Card V2/V3 import."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.personas.cards import card_to_persona, is_card, parse_mes_example, slugify
from app.personas.errors import PersonaError

FIXTURES = Path(__file__).parent / "fixtures"


def _card(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_v2_card_fields_become_a_persona() -> None:
    card = _card("card_v2.json")
    assert is_card(card)
    p = card_to_persona(card, "card_v2.json")
    assert (p.id, p.name) == ("captain-mira", "Captain Mira")
    # card system prompt first ({{original}} = our default), then description, personality,
    # scenario; the macros stay macros and are filled when the prompt is rendered
    prompt = p.render_system_prompt("Sam")
    assert prompt.startswith("You are Captain Mira. Stay in character")
    assert prompt.index("Write short replies.") < prompt.index("captain of the airship")
    assert "Captain Mira's personality: gruff, loyal" in prompt
    assert "Scenario: Sam is a new deckhand on Captain Mira's ship." in prompt
    assert "{{" not in prompt and "{{char}}" in p.system_prompt
    assert p.greeting.endswith("So you're the new hand, {{user}}? Grab a rope.")
    assert p.fill(p.greeting, "Sam") == (
        "*Captain Mira looks up from the charts.* So you're the new hand, Sam? Grab a rope."
    )
    # the whole book is kept, V3-shaped, and none of it is copied into pinned facts: the lore
    # scanner reads constant and keyword entries alike
    assert p.pinned_facts == []
    book = p.character_book
    assert book is not None and book["name"] == "Dawnrunner lore"
    assert [e["keys"] for e in book["entries"]] == [["ship"], ["parrot"], ["storm"], ["gold"]]
    assert all(e["use_regex"] is False for e in book["entries"])  # V2 -> V3: the one new field
    assert p.style_rules == ["Stay gruff with {{user}}, but kind."]
    assert [(d.role, d.content) for d in p.example_dialogue] == [
        ("user", "What's our heading?"),
        ("assistant", "North by northeast, kid.\nKeep your eyes on the clouds."),
        ("user", "Were you really a pirate?"),
        ("assistant", "Once. Don't tell the postmaster."),
    ]
    assert p.fill(p.description).startswith("Captain Mira is the captain")
    assert p.memory.strategy == "hybrid"
    # what we do not map is kept for export
    assert p.card is not None and p.card["alternate_greetings"] == ["Ahoy."]
    assert p.card["tags"] == ["adventure"] and "character_book" not in p.card


def test_v3_card_with_non_ascii_name_and_legacy_macros() -> None:
    p = card_to_persona(_card("card_v3.json"), "card_v3.json")
    assert p.name == "하늘 (Haneul)" and p.id == "haneul"
    assert p.greeting == "어서 와요, {{user}}! 오늘도 아이스 아메리카노?"
    assert p.fill(p.greeting, "민수") == "어서 와요, 민수! 오늘도 아이스 아메리카노?"
    assert [(d.role, d.content) for d in p.example_dialogue] == [
        ("user", "Recommend me something."),
        ("assistant", "Try the yuzu tea, it's my favourite!"),
    ]
    assert p.pinned_facts == []
    assert p.character_book is not None
    assert p.character_book["entries"][0]["content"] == "The café is called Blue Cup."
    assert p.style_rules == []
    assert "cheerful barista" in p.system_prompt
    assert p.card is not None and p.card["nickname"] == "Sky"
    assert card_to_persona(_card("card_v3.json"), persona_id="sky").id == "sky"


def test_v1_card_without_spec_and_its_legacy_macros() -> None:
    v1 = {
        "name": "Old Bot",
        "description": "<BOT> is an old card that greets <USER>.",
        "personality": "",
        "scenario": "",
        "first_mes": "Hello <user>, I am <BOT>.",
        "mes_example": "<START>\n<USER>: hi <BOT>\n<BOT>: hi <USER>",
    }
    assert is_card(v1)
    p = card_to_persona(v1)
    assert p.greeting == "Hello {{user}}, I am {{char}}."
    assert p.fill(p.greeting, "Ann") == "Hello Ann, I am Old Bot."
    assert "{{char}} is an old card that greets {{user}}." in p.system_prompt
    assert [d.content for d in p.example_dialogue] == ["hi {{char}}", "hi {{user}}"]
    assert p.character_book is None and p.card == v1


@pytest.mark.parametrize("macro", ["{{user}}", "{{User}}", "{{USER}}", "{{ user }}"])
def test_macros_are_filled_in_any_case(macro: str) -> None:
    p = card_to_persona({**_card("card_v2.json"), "data": {"name": "Mira", "first_mes": macro}})
    assert p.fill(p.greeting, "Sam") == "Sam"
    assert p.fill("{{Char}} / {{CHAR}}") == "Mira / Mira"


def _broken(path: list[str | int], value: Any) -> dict[str, Any]:
    card = copy.deepcopy(_card("card_v2.json"))
    target = card
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return card


@pytest.mark.parametrize(
    ("card", "field", "problem"),
    [
        (_broken(["spec"], "chara_card_v9"), "spec", "unsupported card spec"),
        (_broken(["data"], "nope"), "data", "`data` object"),
        (_broken(["data", "name"], KeyError), "data.name", "is required"),
        (_broken(["data", "name"], "  "), "data.name", "must not be empty"),
        (_broken(["data", "description"], 42), "data.description", "must be a string, got int"),
        (_broken(["data", "character_book"], []), "data.character_book", "entries"),
        (
            _broken(["data", "character_book", "entries"], KeyError),
            "data.character_book.entries",
            "is required",
        ),
        (
            _broken(["data", "character_book", "entries", 0, "keys"], KeyError),
            "data.character_book.entries.0.keys",
            "is required",
        ),
        (
            _broken(["data", "character_book", "entries", 2, "keys"], "storm"),
            "data.character_book.entries.2.keys",
            "must be a list of strings",
        ),
        (
            _broken(["data", "character_book", "entries", 2, "keys"], ["storm", 3]),
            "data.character_book.entries.2.keys",
            "must be a list of strings",
        ),
        (
            _broken(["data", "character_book", "entries", 0, "secondary_keys"], "x"),
            "data.character_book.entries.0.secondary_keys",
            "must be a list of strings",
        ),
        (
            _broken(["data", "character_book", "entries", 0, "enabled"], "yes"),
            "data.character_book.entries.0.enabled",
            "must be true or false",
        ),
        (
            _broken(["data", "character_book", "entries", 0], "text"),
            "data.character_book.entries.0",
            "must be an object",
        ),
        (_broken(["data", "extensions"], []), "data.extensions", "must be an object"),
        (
            _broken(["data", "character_book", "entries"], {}),
            "data.character_book.entries",
            "must be a list",
        ),
        (
            _broken(["data", "character_book", "entries", 1, "content"], ["x"]),
            "data.character_book.entries.1.content",
            "must be a string",
        ),
        (  # refused at upload, not found out at the first turn by the lore scanner
            _broken(["data", "character_book", "entries", 0, "keys"], ["/(unclosed/"]),
            "data.character_book.entries.0.keys.0",
            "bad regex /(unclosed/",
        ),
        (
            _broken(["data", "character_book", "entries", 0, "keys"], ["k" * 201]),
            "data.character_book.entries.0.keys.0",
            "a key is at most 200 characters",
        ),
    ],
)
def test_malformed_cards_name_the_field(card: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(PersonaError) as e:
        card_to_persona(card, "upload.json")
    assert e.value.field == field and problem in e.value.problem
    assert str(e.value).startswith(f"upload.json: field {field!r}: ")


def test_mes_example_edge_cases() -> None:
    assert parse_mes_example("", "Mira") == []
    lines = parse_mes_example(
        "stray line\n<START>\n{{user}}:hi\n\n{{char}}: yo {{char}}\n<START>\n{{user}}: \n", "Mira"
    )
    assert [(d.role, d.content) for d in lines] == [
        ("user", "hi"),
        ("assistant", "yo {{char}}"),
    ]


def test_slugify() -> None:
    assert slugify("Captain Mira!") == "captain-mira"
    assert slugify("Élodie") == "elodie"
    assert slugify("하늘").startswith("card-") and slugify("하늘") == slugify("하늘")
