"""Export a persona as a Character Card V3 (JSON, or a PNG carrying it).

What the card gets:
- A persona imported from a card (it has `card`) gives back that card's fields verbatim, the
  book included, except where the persona has changed since: a field group whose persona value
  no longer equals what the card's originals derive (cards.derive) is written from the persona.
  So import -> export returns the card, and an edited persona exports its edits.
- A persona written for Memento (YAML, or edited away from its card) is written as: the system
  prompt in `system_prompt` (description, personality and scenario empty: it already holds
  them, and a reader would otherwise add them twice), the greeting in `first_mes`, the example
  dialogue as `mes_example`, the style rules as `post_history_instructions`, the blurb as
  `creator_notes`.
- `extensions.memento` holds what a card has no field for (id, blurb, returning greeting,
  pinned facts, style rules, user name, memory and generation settings); our import reads it
  back, other tools keep it as they keep any extension.
"""

from __future__ import annotations

import copy
from typing import Any

from app.personas.card_png import write_card_png
from app.personas.cards import (
    MEMENTO_EXTENSION,
    MEMENTO_FIELDS,
    TEXT_FIELDS,
    derive,
    render_mes_example,
)
from app.personas.model import Persona

V3_SPEC, V3_VERSION = "chara_card_v3", "3.0"
# every V3 data field with the value an empty one has (the spec makes them all present)
V3_DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "personality": "",
    "scenario": "",
    "first_mes": "",
    "mes_example": "",
    "creator_notes": "",
    "system_prompt": "",
    "post_history_instructions": "",
    "alternate_greetings": [],
    "tags": [],
    "creator": "",
    "character_version": "",
    "extensions": {},
    "group_only_greetings": [],
}
# V3 additions a V2 reader does not know: left out of the `chara` (V2) chunk of a PNG
V3_ONLY = (
    "group_only_greetings",
    "assets",
    "nickname",
    "creator_notes_multilingual",
    "source",
    "creation_date",
    "modification_date",
)
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")


def persona_to_card(persona: Persona) -> dict[str, Any]:
    """The persona as a V3 card: {"spec": "chara_card_v3", "spec_version": "3.0", "data"}."""
    kept = copy.deepcopy(persona.card) if persona.card is not None else None
    data: dict[str, Any] = {**copy.deepcopy(V3_DEFAULTS), **(kept or {})}
    data["name"] = persona.name
    was: dict[str, Any] | None = None
    if kept is not None:
        texts = {k: v for k in TEXT_FIELDS if isinstance(v := kept.get(k), str)}
        was = derive(texts, persona.name)

    def changed(field: str) -> bool:
        return was is None or was[field] != getattr(persona, field)

    if changed("system_prompt"):
        data.update(
            system_prompt=persona.system_prompt, description="", personality="", scenario=""
        )
        if not kept or not kept.get("creator_notes"):
            data["creator_notes"] = persona.description
    if changed("greeting"):
        data["first_mes"] = persona.greeting
    if changed("example_dialogue"):
        data["mes_example"] = render_mes_example(persona.example_dialogue)
    if changed("style_rules"):
        data["post_history_instructions"] = "\n".join(persona.style_rules)
    if persona.character_book is not None:
        data["character_book"] = copy.deepcopy(persona.character_book)
    extensions = data["extensions"] if isinstance(data["extensions"], dict) else {}
    own = persona.model_dump(mode="json", include={"id", *MEMENTO_FIELDS})
    data["extensions"] = {**extensions, MEMENTO_EXTENSION: own}
    return {"spec": V3_SPEC, "spec_version": V3_VERSION, "data": data}


def v2_of(card_v3: dict[str, Any]) -> dict[str, Any]:
    """The same card for V1/V2 readers: spec chara_card_v2, the V3-only fields left out, and
    the V1 fields repeated at the top level (as SillyTavern writes its `chara` chunk)."""
    data = {k: v for k, v in card_v3["data"].items() if k not in V3_ONLY}
    top = {k: data.get(k, "") for k in V1_FIELDS}
    return {**top, "spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def persona_to_png(persona: Persona) -> bytes:
    """A small PNG with the card in a `ccv3` chunk (V3) and a `chara` chunk (V2)."""
    card = persona_to_card(persona)
    return write_card_png({"chara": v2_of(card), "ccv3": card}, persona.name)
