"""SillyTavern Character Card import (V1, V2 `chara_card_v2`, V3 `chara_card_v3`; JSON here,
PNG in card_png.py, export in card_export.py).

What a card field becomes:
- name -> name; id -> the id the caller gives, else the one a Memento export recorded
  (`extensions.memento.id`), else a slug of the name
- description, personality, scenario -> the system prompt, after the card's own system_prompt
  (its `{{original}}` macro stands for our default prompt)
- first_mes -> greeting; mes_example -> example_dialogue (<START> blocks, `{{user}}:` and
  `{{char}}:` speaker prefixes, continuation lines joined)
- post_history_instructions -> a style rule (we have no slot after the history; pinned rules
  sit near the top and are never evicted)
- character_book -> character_book, whole and in the V3 shape (book.py); the lore scanner
  reads it, so nothing of it is copied into pinned facts
- creator_notes -> the description blurb if there is no description
- everything else (and the unmerged originals of the fields above) -> `card`, verbatim, so an
  export gives it back; `extensions.memento` (written by our export) restores the fields a
  card has no place for (pinned facts, returning greeting, memory and generation settings)

Macros stay macros: `{{char}}` and `{{user}}` are filled when text is used (Persona.fill), so
a rename or a user name applies everywhere; the V1 forms `<BOT>` / `<USER>` become them here.
"""

from __future__ import annotations

import copy
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from pydantic import ValidationError

from app.personas.book import normalize_book
from app.personas.errors import PersonaError
from app.personas.model import DialogueLine, Persona, PersonaMemory

CARD_SPECS = {"chara_card_v2": "2", "chara_card_v3": "3"}
# the text fields a card's prompt and greeting are made of (V1, V2 and V3 alike)
TEXT_FIELDS = (
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "system_prompt",
    "post_history_instructions",
    "creator_notes",
)
MEMENTO_EXTENSION = "memento"  # data.extensions.memento: what only Memento has a field for
# persona fields a card cannot carry, restored from extensions.memento on import
MEMENTO_FIELDS = (
    "description",
    "returning_greeting",
    "pinned_facts",
    "style_rules",
    "user_name",
    "memory",
    "generation",
)
DEFAULT_PROMPT = (
    "You are {{char}}. Stay in character: reply as {{char}} would, in first "
    "person, and never mention being an AI model unless the character is one."
)
_BLURB_CHARS = 300
_USER, _BOT = re.compile(r"<USER>", re.I), re.compile(r"<BOT>", re.I)
_SPEAKER = re.compile(r"^\s*(\{\{user\}\}|\{\{char\}\}|<USER>|<BOT>|[^:\n]{1,40}):\s?(.*)$", re.I)


def is_card(data: Mapping[str, Any]) -> bool:
    """Whether `data` claims to be a character card (V2/V3 `spec`, or a V1 card's shape)."""
    spec = data.get("spec")
    if isinstance(spec, str) and spec.startswith("chara_card"):
        return True
    return "first_mes" in data and "name" in data and "system_prompt" not in data


def card_data(card: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The card's fields: `data` of a V2/V3 card, the top level of a V1 card."""
    spec = card.get("spec")
    if spec is None:
        return card  # V1: the fields sit at the top level
    if spec not in CARD_SPECS:
        raise PersonaError(
            source,
            "spec",
            f"unsupported card spec {spec!r}; expected chara_card_v2 or chara_card_v3",
        )
    data = card.get("data")
    if not isinstance(data, Mapping):
        raise PersonaError(source, "data", "a V2/V3 card keeps its fields in a `data` object")
    return data


def card_to_persona(
    card: Mapping[str, Any], source: str = "card", persona_id: str | None = None
) -> Persona:
    """The Persona a card describes. PersonaError (-> HTTP 422) names the bad field."""
    data = card_data(card, source)
    where = "data." if card.get("spec") is not None else ""
    name = _text(data, "name", source, where, required=True).strip()
    if not name:
        raise PersonaError(source, f"{where}name", "must not be empty")
    fields = {k: _text(data, k, source, where) for k in TEXT_FIELDS}
    derived = derive(fields, name)
    book = data.get("character_book")
    if book is not None:
        book = normalize_book(book, source, f"{where}character_book")
    memento = _memento_extension(data, source, where)
    kept = copy.deepcopy({k: v for k, v in data.items() if k != "character_book"})
    if isinstance(kept.get("extensions"), dict):
        kept["extensions"].pop(MEMENTO_EXTENSION, None)  # export writes it afresh
    persona: dict[str, Any] = {
        "id": persona_id or memento.get("id") or slugify(name),
        "name": name[:100],
        **derived,
        "character_book": book,
        "card": kept,
        "memory": PersonaMemory(strategy="hybrid"),
    }
    for key in MEMENTO_FIELDS:
        if key in memento:
            persona[key] = memento[key]
    rules = memento.get("style_rules")
    if rules is not None and (
        not isinstance(rules, list) or "\n".join(map(str, rules)) != _one(derived["style_rules"])
    ):
        # post_history_instructions was edited after our export: the card's text wins
        persona["style_rules"] = derived["style_rules"]
    try:
        return Persona.model_validate(persona)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise PersonaError(source, field, f"{err['msg']} (after card conversion)") from None


def derive(fields: Mapping[str, str], name: str) -> dict[str, Any]:
    """The persona fields made from a card's text fields. Export calls it too: a field whose
    persona value still equals what the card's originals derive exports the originals."""
    own = legacy_macros(fields.get("system_prompt", ""))
    prompt_parts = [own.replace("{{original}}", DEFAULT_PROMPT) if own else DEFAULT_PROMPT]
    if description := legacy_macros(fields.get("description", "")):
        prompt_parts.append(description)
    if personality := legacy_macros(fields.get("personality", "")):
        prompt_parts.append(f"{{{{char}}}}'s personality: {personality}")
    if scenario := legacy_macros(fields.get("scenario", "")):
        prompt_parts.append(f"Scenario: {scenario}")
    post = legacy_macros(fields.get("post_history_instructions", ""))
    blurb = fields.get("description", "") or fields.get("creator_notes", "")
    return {
        "description": _shorten(legacy_macros(blurb), _BLURB_CHARS),
        "system_prompt": "\n\n".join(prompt_parts),
        "greeting": legacy_macros(fields.get("first_mes", "")),
        "example_dialogue": parse_mes_example(fields.get("mes_example", ""), name),
        "style_rules": [post] if post else [],
    }


def legacy_macros(text: str) -> str:
    """V1 cards' <USER>/<BOT> as {{user}}/{{char}}, stripped."""
    return re.sub(
        r"<BOT>", "{{char}}", re.sub(r"<USER>", "{{user}}", text, flags=re.I), flags=re.I
    ).strip()


class _Turn(TypedDict):
    role: Literal["user", "assistant"]
    content: str


def parse_mes_example(text: str, char_name: str) -> list[DialogueLine]:
    """<START>-separated example chats -> dialogue lines. A line `X: ...` starts a turn when
    X is {{user}}/<USER> (user) or {{char}}/<BOT>/the character's name (assistant); other
    lines continue the current turn. Macros stay macros."""
    lines: list[DialogueLine] = []
    current: _Turn | None = None

    def flush() -> None:
        nonlocal current
        if current and current["content"].strip():
            content = legacy_macros(current["content"])
            lines.append(DialogueLine(role=current["role"], content=content))
        current = None

    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.strip().upper().startswith("<START>"):
            flush()
            continue
        m = _SPEAKER.match(raw)
        speaker = m.group(1).strip().lower() if m else None
        role: Literal["user", "assistant"] | None = None
        if speaker in ("{{user}}", "<user>"):
            role = "user"
        elif speaker in ("{{char}}", "<bot>") or (speaker and speaker == char_name.casefold()):
            role = "assistant"
        if role and m:
            flush()
            current = {"role": role, "content": m.group(2)}
        elif current is not None and raw.strip():
            current["content"] += "\n" + raw.strip()
    flush()
    return lines


def render_mes_example(lines: list[DialogueLine]) -> str:
    """Example dialogue as a card's mes_example (parse_mes_example reads it back)."""
    if not lines:
        return ""
    turns = [f"{'{{user}}' if ln.role == 'user' else '{{char}}'}: {ln.content}" for ln in lines]
    return "<START>\n" + "\n".join(turns)


def slugify(name: str) -> str:
    """A persona id from a name: ASCII lowercase words joined by '-', or a hash if none."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    if not slug:
        slug = "card-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return slug


def _memento_extension(data: Mapping[str, Any], source: str, where: str) -> dict[str, Any]:
    extensions = data.get("extensions")
    if extensions is None:
        return {}
    if not isinstance(extensions, Mapping):
        raise PersonaError(source, f"{where}extensions", "must be an object")
    memento = extensions.get(MEMENTO_EXTENSION)
    if memento is None:
        return {}
    if not isinstance(memento, Mapping):
        raise PersonaError(source, f"{where}extensions.{MEMENTO_EXTENSION}", "must be an object")
    return dict(memento)


def _one(rules: list[str]) -> str:
    return "\n".join(rules)


def _text(
    data: Mapping[str, Any], key: str, source: str, where: str, required: bool = False
) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise PersonaError(source, f"{where}{key}", "is required")
        return ""
    if not isinstance(value, str):
        raise PersonaError(source, f"{where}{key}", f"must be a string, got {type(value).__name__}")
    return value


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
