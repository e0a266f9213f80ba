"""Personas: the files of personas/ plus uploads (our YAML/JSON form or a Character Card).

Everyone sees the files; an upload only its uploader (PersonasDep is the caller's view).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request, status

from app.deps import PersonasDep
from app.errors import InvalidFieldError
from app.persona_catalog import CatalogEntry
from app.personas.model import Persona
from app.schemas import ERRORS, PersonaSummary

router = APIRouter(prefix="/v1/personas", tags=["personas"], responses=ERRORS)


class PersonaOut(Persona):
    source: str = "file"


def summary(e: CatalogEntry) -> PersonaSummary:
    return PersonaSummary(
        id=e.persona.id,
        name=e.persona.name,
        description=e.persona.description,
        default_strategy=e.persona.memory.strategy,
        source=e.source,
    )


def full(e: CatalogEntry) -> PersonaOut:
    return PersonaOut.model_validate({**e.persona.model_dump(), "source": e.source})


@router.get("", response_model=dict[str, list[PersonaSummary]])
async def list_personas(personas: PersonasDep) -> dict[str, list[PersonaSummary]]:
    return {"personas": [summary(e) for e in personas.list()]}


@router.get("/{persona_id}", response_model=PersonaOut)
async def get_persona(persona_id: str, personas: PersonasDep) -> PersonaOut:
    return full(personas.entry(persona_id))


UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "description": "our persona form as JSON or YAML, or a SillyTavern Character Card V2/V3",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PersonaOut,
    openapi_extra=UPLOAD_DOC,
)
async def add_persona(request: Request, personas: PersonasDep) -> PersonaOut:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFieldError(f"the body is not UTF-8 (byte {exc.start})", "body") from None
    if not text.strip():
        raise InvalidFieldError("empty body: send a persona (YAML/JSON) or a card", "body")
    body: Any = text
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidFieldError(
                f"invalid JSON at line {exc.lineno}: {exc.msg}", "body"
            ) from None
    persona = await asyncio.to_thread(personas.add, body)
    return full(personas.entry(persona.id))
