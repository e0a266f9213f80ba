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
    # scenario; {{char}} is resolved, {{user}} stays a macro for render time
    prompt = p.system_prompt
    assert prompt.startswith("You are Captain Mira. Stay in character")
    assert prompt.index("Write short replies.") < prompt.index("captain of the airship")
    assert "Captain Mira's personality: gruff, loyal" in prompt
    assert "Scenario: {{user}} is a new deckhand on Captain Mira's ship." in prompt
    assert "{{char}}" not in prompt
    assert p.render_system_prompt("Sam").count("Sam") >= 1
    assert p.greeting.endswith("So you're the new hand, {{user}}? Grab a rope.")
    assert p.fill(p.greeting, "Sam").endswith("new hand, Sam? Grab a rope.")
    # constant, enabled book entries become pinned facts in insertion order
    assert p.pinned_facts == [
        "Captain Mira keeps a parrot named Biscuit.",
        "The Dawnrunner has a brass figurehead shaped like a swan.",
    ]
    assert p.style_rules == ["Stay gruff with {{user}}, but kind."]
    assert [(d.role, d.content) for d in p.example_dialogue] == [
        ("user", "What's our heading?"),
        ("assistant", "North by northeast, kid.\nKeep your eyes on the clouds."),
        ("user", "Were you really a pirate?"),
        ("assistant", "Once. Don't tell the postmaster."),
    ]
    assert p.description.startswith("Captain Mira is the captain")
    assert p.memory.strategy == "hybrid"


def test_v3_card_with_non_ascii_name_and_legacy_macros() -> None:
    p = card_to_persona(_card("card_v3.json"), "card_v3.json")
    assert p.name == "하늘 (Haneul)" and p.id == "haneul"
    assert p.greeting == "어서 와요, {{user}}! 오늘도 아이스 아메리카노?"
    assert [(d.role, d.content) for d in p.example_dialogue] == [
        ("user", "Recommend me something."),
        ("assistant", "Try the yuzu tea, it's my favourite!"),
    ]
    assert p.pinned_facts == ["The café is called Blue Cup."]
    assert p.style_rules == []
    assert "cheerful barista" in p.system_prompt
    assert card_to_persona(_card("card_v3.json"), persona_id="sky").id == "sky"


def test_v1_card_without_spec() -> None:
    v1 = {
        "name": "Old Bot",
        "description": "An old card.",
        "personality": "",
        "scenario": "",
        "first_mes": "Hello.",
        "mes_example": "",
    }
    assert is_card(v1)
    assert card_to_persona(v1).greeting == "Hello."


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
            _broken(["data", "character_book", "entries"], {}),
            "data.character_book.entries",
            "must be a list",
        ),
        (
            _broken(["data", "character_book", "entries", 1, "content"], ["x"]),
            "data.character_book.entries.1.content",
            "must be a string",
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
    assert [(d.role, d.content) for d in lines] == [("user", "hi"), ("assistant", "yo Mira")]


def test_slugify() -> None:
    assert slugify("Captain Mira!") == "captain-mira"
    assert slugify("Élodie") == "elodie"
    assert slugify("하늘").startswith("card-") and slugify("하늘") == slugify("하늘")
