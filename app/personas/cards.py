"""SillyTavern Character Card import (V2 `chara_card_v2`, V3 `chara_card_v3`, JSON form).

What a card field becomes:
- name -> name; id -> a slug of the name (or the id the caller gives)
- description, personality, scenario -> the system prompt, after the card's own system_prompt
  (its `{{original}}` macro stands for our default prompt)
- first_mes -> greeting; mes_example -> example_dialogue (<START> blocks, `{{user}}:` and
  `{{char}}:` speaker prefixes, continuation lines joined)
- post_history_instructions -> a style rule (we have no slot after the history; pinned rules
  sit near the top and are never evicted)
- character_book entries that are `constant` and enabled -> pinned facts (keyword-triggered
  entries need a lorebook scanner we do not have; they are skipped)
- creator_notes -> the description blurb if there is no description
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.personas.errors import PersonaError
from app.personas.model import DialogueLine, Persona, PersonaMemory

CARD_SPECS = {"chara_card_v2": "2", "chara_card_v3": "3"}
_BLURB_CHARS = 300
_SPEAKER = re.compile(r"^\s*(\{\{user\}\}|\{\{char\}\}|<USER>|<BOT>|[^:\n]{1,40}):\s?(.*)$")


def is_card(data: Mapping[str, Any]) -> bool:
    """Whether `data` claims to be a character card (V2/V3 `spec`, or a V1 card's shape)."""
    spec = data.get("spec")
    if isinstance(spec, str) and spec.startswith("chara_card"):
        return True
    return "first_mes" in data and "name" in data and "system_prompt" not in data


def card_to_persona(
    card: Mapping[str, Any], source: str = "card", persona_id: str | None = None
) -> Persona:
    """The Persona a card describes. PersonaError (-> HTTP 422) names the bad field."""
    spec = card.get("spec")
    if spec is None:
        data: Mapping[str, Any] = card  # V1: the fields sit at the top level
    elif spec not in CARD_SPECS:
        raise PersonaError(
            source,
            "spec",
            f"unsupported card spec {spec!r}; expected chara_card_v2 or chara_card_v3",
        )
    else:
        data = card.get("data")  # type: ignore[assignment]
        if not isinstance(data, Mapping):
            raise PersonaError(source, "data", "a V2/V3 card keeps its fields in a `data` object")

    name = _text(data, "name", source, required=True).strip()
    if not name:
        raise PersonaError(source, "data.name", "must not be empty")
    fields = {
        k: _text(data, k, source)
        for k in (
            "description",
            "personality",
            "scenario",
            "first_mes",
            "mes_example",
            "system_prompt",
            "post_history_instructions",
            "creator_notes",
        )
    }

    def char(text: str) -> str:
        # {{char}} is fixed by the card; {{user}} stays a macro, filled at render time
        return (
            text.replace("{{char}}", name).replace("<BOT>", name).replace("<USER>", "{{user}}")
        ).strip()

    default_prompt = (
        f"You are {name}. Stay in character: reply as {name} would, in first "
        "person, and never mention being an AI model unless the character is one."
    )
    own = fields["system_prompt"].strip()
    prompt_parts = [own.replace("{{original}}", default_prompt) if own else default_prompt]
    if fields["description"]:
        prompt_parts.append(char(fields["description"]))
    if fields["personality"]:
        prompt_parts.append(f"{name}'s personality: {char(fields['personality'])}")
    if fields["scenario"]:
        prompt_parts.append(f"Scenario: {char(fields['scenario'])}")

    style = (
        [char(fields["post_history_instructions"])]
        if fields["post_history_instructions"].strip()
        else []
    )
    blurb = fields["description"] or fields["creator_notes"]
    persona = {
        "id": persona_id or slugify(name),
        "name": name[:100],
        "description": _shorten(char(blurb), _BLURB_CHARS),
        "system_prompt": char("\n\n".join(prompt_parts)),
        "greeting": char(fields["first_mes"]),
        "example_dialogue": parse_mes_example(fields["mes_example"], name),
        "pinned_facts": _constant_entries(data.get("character_book"), source, char),
        "style_rules": style,
        "memory": PersonaMemory(strategy="hybrid"),
    }
    try:
        return Persona.model_validate(persona)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise PersonaError(source, field, f"{err['msg']} (after card conversion)") from None


def parse_mes_example(text: str, char_name: str) -> list[DialogueLine]:
    """<START>-separated example chats -> dialogue lines. A line `X: ...` starts a turn when
    X is {{user}}/<USER> (user) or {{char}}/<BOT>/the character's name (assistant); other
    lines continue the current turn."""
    lines: list[DialogueLine] = []
    current: dict[str, str] | None = None

    def flush() -> None:
        nonlocal current
        if current and current["content"].strip():
            content = current["content"].strip().replace("{{char}}", char_name)
            lines.append(DialogueLine(role=current["role"], content=content))  # type: ignore[arg-type]
        current = None

    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.strip().upper().startswith("<START>"):
            flush()
            continue
        m = _SPEAKER.match(raw)
        speaker = m.group(1).strip() if m else None
        role = None
        if speaker in ("{{user}}", "<USER>"):
            role = "user"
        elif speaker in ("{{char}}", "<BOT>") or (
            speaker and speaker.casefold() == char_name.casefold()
        ):
            role = "assistant"
        if role and m:
            flush()
            current = {"role": role, "content": m.group(2).replace("<USER>", "{{user}}")}
        elif current is not None and raw.strip():
            current["content"] += "\n" + raw.strip()
    flush()
    return lines


def slugify(name: str) -> str:
    """A persona id from a name: ASCII lowercase words joined by '-', or a hash if none."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    if not slug:
        slug = "card-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return slug


def _constant_entries(book: Any, source: str, char: Any) -> list[str]:
    if book is None:
        return []
    if not isinstance(book, Mapping):
        raise PersonaError(source, "data.character_book", "must be an object with `entries`")
    entries = book.get("entries", [])
    if not isinstance(entries, list):
        raise PersonaError(source, "data.character_book.entries", "must be a list")
    facts = []
    for i, entry in enumerate(entries):
        where = f"data.character_book.entries.{i}"
        if not isinstance(entry, Mapping):
            raise PersonaError(source, where, "must be an object")
        content = entry.get("content", "")
        if not isinstance(content, str):
            raise PersonaError(source, f"{where}.content", "must be a string")
        if (
            entry.get("constant") is True
            and entry.get("enabled", True) is not False
            and content.strip()
        ):
            facts.append((entry.get("insertion_order", 0), i, char(content)))
    # the card's own order: lower insertion_order first, then position in the list
    return [text for _, _, text in sorted(facts, key=lambda f: (_num(f[0]), f[1]))]


def _text(data: Mapping[str, Any], key: str, source: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise PersonaError(source, f"data.{key}", "is required")
        return ""
    if not isinstance(value, str):
        raise PersonaError(source, f"data.{key}", f"must be a string, got {type(value).__name__}")
    return value


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
