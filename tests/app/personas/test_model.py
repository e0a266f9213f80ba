from __future__ import annotations

from app.personas.model import Persona


def _persona(**extra: object) -> Persona:
    return Persona.model_validate(
        {
            "id": "mira",
            "name": "Mira",
            "system_prompt": "You are {{char}}, talking with {{user}}.",
            "example_dialogue": [
                {"role": "user", "content": "Hi {{char}}"},
                {"role": "assistant", "content": "Hey {{user}}!"},
            ],
            "pinned_facts": ["{{char}} was born in Busan."],
            "style_rules": ["Call {{user}} by name."],
            **extra,
        }
    )


def test_render_system_prompt_fills_macros_and_appends_examples() -> None:
    text = _persona().render_system_prompt("Sam")
    assert text == (
        "You are Mira, talking with Sam.\n\nExample conversation:\nSam: Hi Mira\nMira: Hey Sam!"
    )
    dad = _persona(user_name="아빠").render_system_prompt()
    assert dad.endswith("아빠: Hi Mira\nMira: Hey 아빠!")
    no_examples = _persona(example_dialogue=[])
    assert no_examples.render_system_prompt() == "You are Mira, talking with User."


def test_pinned_facts_then_style_rules_with_stable_ids() -> None:
    pinned = _persona().pinned("Sam")
    assert [(f.id, f.source, f.text) for f in pinned] == [
        ("mira:fact:0", "persona", "Mira was born in Busan."),
        ("mira:style:0", "style", "Call Sam by name."),
    ]
    assert _persona().example_messages("Sam")[1] == {"role": "assistant", "content": "Hey Sam!"}
