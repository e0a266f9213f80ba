"""Load personas: one YAML file each from a directory, or an upload (our form or a card)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from app.personas.card_png import is_png, read_card_png
from app.personas.cards import card_to_persona, is_card
from app.personas.errors import PersonaError
from app.personas.model import Persona
from memory.registry import validate_params

DEFAULT_MAX_BYTES = 256_000
PERSONA_SUFFIXES = (".yaml", ".yml")
Format = Literal["yaml", "json", "card"]

__all__ = [
    "PersonaError",
    "load_personas",
    "load_persona_file",
    "parse_persona",
    "parse_persona_text",
    "parse_persona_upload",
]


def parse_persona(data: Any, source: str, default_id: str | None = None) -> Persona:
    """Validate our persona form (a mapping). PersonaError names source, field and problem."""
    if not isinstance(data, Mapping):
        raise PersonaError(source, None, f"expected a mapping of fields, got {_kind(data)}")
    fields = dict(data)
    if default_id is not None and "id" not in fields:
        fields["id"] = default_id
    try:
        persona = Persona.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        problem = err["msg"]
        if err["type"] == "extra_forbidden":
            problem = (
                "unknown field (check its spelling; allowed: "
                + ", ".join(_allowed_fields(err["loc"]))
                + ")"
            )
        elif err["type"] == "string_pattern_mismatch" and field == "id":
            problem = "must be a slug: lowercase letters, digits, '-' or '_', at most 64"
        more = len(e.errors()) - 1
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise PersonaError(source, field, problem) from None
    _check_memory_params(persona, source)
    return persona


def _check_memory_params(persona: Persona, source: str) -> None:
    """memory.params is free-form in the persona model; the strategy's own Params decide what
    is valid, and checking here keeps arbitrary (huge) structures out of the catalog."""
    try:
        validate_params(persona.memory.strategy, persona.memory.params)
    except ValidationError as e:
        err = e.errors()[0]
        sub = ".".join(str(p) for p in err["loc"])
        field = "memory.params" + (f".{sub}" if sub else "")
        problem = err["msg"]
        if err["type"] == "extra_forbidden":
            problem = f"not a parameter of the {persona.memory.strategy!r} memory strategy"
        raise PersonaError(source, field, problem) from None


def _has_alias(text: str) -> bool:
    """Whether the YAML uses an alias (*name). Checked on the event stream, before anything is
    built: expanding aliases is how a few hundred bytes become gigabytes (a billion-laughs
    bomb), and no persona needs them."""
    return any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader))


def parse_persona_text(
    text: str,
    source: str,
    default_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Persona, Format]:
    """Parse an upload or a file's text: YAML or JSON in our form, or a Character Card V2/V3
    JSON (detected by its `spec`). Returns the persona and which form it was."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PersonaError(
            source,
            None,
            f"is {size} bytes, over the {max_bytes}-byte limit (MEMENTO_MAX_PERSONA_BYTES)",
        )
    stripped = text.lstrip()
    fmt: Format = "json" if stripped.startswith("{") else "yaml"
    try:
        # JSON is YAML, but json.loads gives better messages for JSON documents
        if fmt == "json":
            data = json.loads(text)
        elif _has_alias(text):
            raise PersonaError(
                source, None, "YAML aliases (*name) are not allowed in a persona; write it out"
            )
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise PersonaError(source, None, f"invalid JSON at line {e.lineno}: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise PersonaError(source, None, f"invalid YAML{at}: {getattr(e, 'problem', e)}") from None
    return parse_persona_data(data, source, default_id, fmt)


def parse_persona_data(
    data: Any, source: str, default_id: str | None = None, fmt: Format = "json"
) -> tuple[Persona, Format]:
    """An already-decoded upload (e.g. a JSON request body): our form or a card."""
    if isinstance(data, Mapping) and is_card(data):
        return card_to_persona(data, source, persona_id=default_id), "card"
    return parse_persona(data, source, default_id), fmt


def parse_persona_upload(
    body: str | bytes | Mapping[str, Any],
    source: str,
    persona_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Persona, Format]:
    """An upload in any form we take: text (YAML/JSON, our form or a card), a decoded JSON
    body, or bytes (a card PNG, else UTF-8 text). `persona_id` (the caller's choice) wins over
    any id in the body. Every form meets the same size limit on its persona or card JSON."""
    if isinstance(body, bytes):
        if is_png(body):
            card = read_card_png(body, source, max_bytes)
            persona, fmt = parse_persona_data(card, source, persona_id, "card")
            return _with_id(persona, persona_id, source), fmt
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PersonaError(
                source, None, f"neither a PNG card nor UTF-8 text (byte {e.start})"
            ) from None
    if isinstance(body, str):
        persona, fmt = parse_persona_text(body, source, persona_id, max_bytes)
    else:
        # a decoded JSON body must meet the same limit as text: measure it re-serialized
        size = len(json.dumps(body, ensure_ascii=False).encode("utf-8"))
        if size > max_bytes:
            raise PersonaError(
                source,
                None,
                f"is {size} bytes, over the {max_bytes}-byte limit (MEMENTO_MAX_PERSONA_BYTES)",
            )
        persona, fmt = parse_persona_data(body, source, persona_id)
    return _with_id(persona, persona_id, source), fmt


def _with_id(persona: Persona, persona_id: str | None, source: str) -> Persona:
    if persona_id is None or persona.id == persona_id:
        return persona
    return parse_persona({**persona.model_dump(), "id": persona_id}, source)


def load_persona_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Persona:
    """One persona file; its id defaults to the file name without suffix."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PersonaError(
                source,
                None,
                f"is {size} bytes, over the {max_bytes}-byte limit (MEMENTO_MAX_PERSONA_BYTES)",
            )
        raw = path.read_bytes()
    except OSError as e:
        raise PersonaError(source, None, f"cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PersonaError(source, None, f"not UTF-8 text (byte {e.start})") from None
    persona, _ = parse_persona_text(text, source, default_id=path.stem, max_bytes=max_bytes)
    return persona


def load_personas(directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Persona]:
    """Every *.yaml / *.yml persona in `directory`, by id, in file-name order. The first invalid
    file raises PersonaError (the server must not start half-configured); so do two files
    claiming one id."""
    if not directory.is_dir():
        raise PersonaError(str(directory), None, "personas directory not found")
    personas: dict[str, Persona] = {}
    origin: dict[str, Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in PERSONA_SUFFIXES):
        persona = load_persona_file(path, max_bytes)
        if persona.id in personas:
            raise PersonaError(
                str(path), "id", f"{persona.id!r} is already defined by {origin[persona.id].name}"
            )
        personas[persona.id], origin[persona.id] = persona, path
    return personas


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Persona
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            model = ann
    return list(model.model_fields)


def _kind(data: Any) -> str:
    return "nothing (empty document)" if data is None else type(data).__name__
