"""Personas: the files of personas/ plus uploads (our YAML/JSON form or a Character Card, JSON
or PNG); replace and delete an upload; export any persona as a V3 card; a persona's lorebook
as a SillyTavern World Info file.

Everyone sees the files; an upload only its uploader (PersonasDep is the caller's view), so
another user's upload is a 404 on every route here, exactly like an id nobody has. What blocks
(the store, parsing uploads, encoding a PNG) runs in app/service/persona_admin.py.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from app.api.uploads import UPLOAD_DOC, read_upload
from app.deps import PersonaAdminDep, PersonasDep
from app.errors import NotFoundError
from app.personas.card_export import persona_to_card
from app.personas.catalog import CatalogEntry
from app.personas.model import SLUG_PATTERN, Persona
from app.personas.world_info import book_to_world_info
from app.schemas import ERRORS, PersonaSummary
from app.service.persona_admin import book_of

router = APIRouter(prefix="/v1/personas", tags=["personas"], responses=ERRORS)

PersonaId = Annotated[
    str | None,
    Query(
        pattern=SLUG_PATTERN,
        description="the id to give the upload (wins over the body's id or the card name)",
    ),
]


class PersonaOut(Persona):
    """A persona as shown: its greeting, returning greeting and blurb with the {{char}} and
    {{user}} macros filled (what a chat shows); the other fields as written (the card export
    gives the whole definition with its macros)."""

    source: str = "file"


def summary(e: CatalogEntry) -> PersonaSummary:
    return PersonaSummary(
        id=e.persona.id,
        name=e.persona.name,
        description=e.persona.fill(e.persona.description),
        default_strategy=e.persona.memory.strategy,
        source=e.source,
    )


def full(e: CatalogEntry) -> PersonaOut:
    p = e.persona
    shown = {k: p.fill(getattr(p, k)) for k in ("greeting", "returning_greeting", "description")}
    return PersonaOut.model_validate({**p.model_dump(), **shown, "source": e.source})


@router.get("", response_model=dict[str, list[PersonaSummary]])
async def list_personas(personas: PersonasDep) -> dict[str, list[PersonaSummary]]:
    return {"personas": [summary(e) for e in personas.list()]}


@router.get("/{persona_id}", response_model=PersonaOut)
async def get_persona(persona_id: str, personas: PersonasDep) -> PersonaOut:
    return full(personas.entry(persona_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PersonaOut,
    openapi_extra=UPLOAD_DOC,
)
async def add_persona(request: Request, admin: PersonaAdminDep, id: PersonaId = None) -> PersonaOut:
    return full(await admin.add(await read_upload(request), id))


@router.put("/{persona_id}", response_model=PersonaOut, openapi_extra=UPLOAD_DOC)
async def replace_persona(persona_id: str, request: Request, admin: PersonaAdminDep) -> PersonaOut:
    """Replace your upload (any form POST takes; the id stays). 404 if you have no upload with
    that id, 409 for a built-in persona."""
    return full(await admin.replace(persona_id, await read_upload(request)))


@router.delete("/{persona_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_persona(persona_id: str, admin: PersonaAdminDep) -> Response:
    """Delete your upload and its book. Sessions with it keep their messages and memory; a
    turn in one answers 409 until a persona with that id is uploaded again."""
    await admin.delete(persona_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{persona_id}/card",
    responses={200: {"content": {"application/json": {}, "image/png": {}}}},
)
async def export_card(
    persona_id: str,
    personas: PersonasDep,
    admin: PersonaAdminDep,
    format: Literal["json", "png"] = Query(default="json", description="json or png"),
) -> Response:
    """The persona as a Character Card V3: JSON, or a PNG with `ccv3` and `chara` chunks."""
    persona = personas.get(persona_id)
    disposition = {"Content-Disposition": f'attachment; filename="{persona.id}.{format}"'}
    if format == "png":
        png = await admin.card_png(persona_id)
        return Response(png, media_type="image/png", headers=disposition)
    text = json.dumps(persona_to_card(persona), ensure_ascii=False, indent=2)
    return Response(text, media_type="application/json", headers=disposition)


@router.get("/{persona_id}/world-info")
async def export_world_info(persona_id: str, personas: PersonasDep) -> Response:
    """The persona's lorebook as a SillyTavern World Info file (404 if she has none)."""
    persona = personas.get(persona_id)
    if persona.character_book is None:
        raise NotFoundError(f"persona {persona_id!r} has no lorebook", field="character_book")
    world = book_to_world_info(persona.character_book)
    disposition = {"Content-Disposition": f'attachment; filename="{persona.id}-world-info.json"'}
    text = json.dumps(world, ensure_ascii=False, indent=2)
    return Response(text, media_type="application/json", headers=disposition)


@router.put("/{persona_id}/world-info", response_model=PersonaOut)
@router.post("/{persona_id}/world-info", response_model=PersonaOut)
async def set_world_info(
    persona_id: str, body: dict[str, Any], admin: PersonaAdminDep
) -> PersonaOut:
    """Set your upload's lorebook from a SillyTavern World Info file (entries keyed by uid), or
    from a V3 `character_book` (entries in a list). 404/409 as PUT of the persona."""
    return full(await admin.set_book(persona_id, book_of(body)))


@router.delete("/{persona_id}/world-info", status_code=status.HTTP_204_NO_CONTENT)
async def delete_world_info(persona_id: str, admin: PersonaAdminDep) -> Response:
    """Remove your upload's lorebook."""
    await admin.set_book(persona_id, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
