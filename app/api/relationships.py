"""Relationships: what a persona remembers of the user across sessions. Read it, add and edit
the facts she remembers always, edit or forget a session's gist, wipe it, export and import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field, ValidationError

from app.deps import CurrentUser, PersonasDep, RelationshipAdminDep
from app.errors import InvalidFieldError, validation_error_fields
from app.schemas import (
    ERRORS,
    FactIn,
    RelationshipList,
    RelationshipOut,
    RelationshipPatch,
    RelationshipSessionOut,
)
from app.service.relationship_admin import RelationshipView
from memory.relationship import MAX_FACTS, RelationshipFact, SessionGist

router = APIRouter(prefix="/v1/relationships", tags=["relationships"], responses=ERRORS)

EXPORT_FORMAT: Final = "memento.relationship/1"


class RelationshipExport(BaseModel):
    format: Literal["memento.relationship/1"] = EXPORT_FORMAT
    persona: str = Field(min_length=1, max_length=100)
    exported_at: datetime | None = None
    facts: list[RelationshipFact] = Field(default_factory=list, max_length=MAX_FACTS)
    gists: list[SessionGist] = Field(default_factory=list, max_length=500)


def relationship_out(view: RelationshipView) -> RelationshipOut:
    state = view.state
    return RelationshipOut(
        persona=view.persona_id,
        facts=state.facts,
        gists=state.gists,
        sessions=[
            RelationshipSessionOut(
                id=s.id, title=s.title, created_at=s.created_at, updated_at=s.updated_at
            )
            for s in view.sessions
        ],
        recall_after_id=state.recall_after_id,
    )


@router.get("", response_model=RelationshipList)
async def list_relationships(user: CurrentUser, admin: RelationshipAdminDep) -> RelationshipList:
    records = await admin.list_relationships(user.id)
    return RelationshipList(
        relationships=[
            RelationshipOut(
                persona=r.persona_id,
                facts=r.state.facts,
                gists=r.state.gists,
                recall_after_id=r.state.recall_after_id,
                updated_at=r.updated_at,
            )
            for r in records
        ]
    )


@router.get(
    "/{persona_id}",
    response_model=RelationshipOut,
    description="What the persona remembers of you in every session: the facts to remember "
    "always, a gist of each past session (with its session and dates), and the sessions her "
    "memory reaches.",
)
async def get_relationship(
    persona_id: str, user: CurrentUser, admin: RelationshipAdminDep, personas: PersonasDep
) -> RelationshipOut:
    return relationship_out(await admin.get(user.id, persona_id, personas))


@router.patch("/{persona_id}", response_model=RelationshipOut)
async def patch_relationship(
    persona_id: str,
    body: RelationshipPatch,
    user: CurrentUser,
    admin: RelationshipAdminDep,
    personas: PersonasDep,
) -> RelationshipOut:
    """Replace the facts and/or rewrite gists (an empty text forgets that session's gist). A
    gist the user wrote is never overwritten by extraction."""
    facts = None if body.facts is None else [(f.text, f.session_id) for f in body.facts]
    gists = [(g.session_id, g.text) for g in body.gists or []]
    return relationship_out(await admin.edit(user.id, persona_id, personas, facts, gists))


@router.post(
    "/{persona_id}/facts", status_code=status.HTTP_201_CREATED, response_model=RelationshipOut
)
async def add_fact(
    persona_id: str,
    body: FactIn,
    user: CurrentUser,
    admin: RelationshipAdminDep,
    personas: PersonasDep,
) -> RelationshipOut:
    """A fact she remembers in every session with you (pinned "always")."""
    view = await admin.add_fact(user.id, persona_id, personas, body.text, body.session_id)
    return relationship_out(view)


@router.delete("/{persona_id}/facts/{fact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def forget_fact(
    persona_id: str, fact_id: str, user: CurrentUser, admin: RelationshipAdminDep
) -> Response:
    await admin.forget_fact(user.id, persona_id, fact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{persona_id}/gists/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Forget a session's gist (it stays forgotten: extraction will not write it "
    "again). The session's turns stay recallable; forget them one by one or delete the session.",
)
async def forget_gist(
    persona_id: str, session_id: str, user: CurrentUser, admin: RelationshipAdminDep
) -> Response:
    await admin.forget_gist(user.id, persona_id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{persona_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Wipe the relationship: the facts and gists go, and no turn said so far is "
    "recalled across sessions any more. Each session keeps its own transcript and memory.",
)
async def wipe_relationship(
    persona_id: str, user: CurrentUser, admin: RelationshipAdminDep
) -> Response:
    await admin.wipe(user.id, persona_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{persona_id}/export", response_model=RelationshipExport)
async def export_relationship(
    persona_id: str, user: CurrentUser, admin: RelationshipAdminDep, personas: PersonasDep
) -> RelationshipExport:
    state = await admin.export(user.id, persona_id, personas)
    return RelationshipExport(
        persona=persona_id, exported_at=datetime.now(UTC), facts=state.facts, gists=state.gists
    )


@router.post("/import", response_model=RelationshipOut)
async def import_relationship(
    user: CurrentUser,
    admin: RelationshipAdminDep,
    personas: PersonasDep,
    body: Annotated[dict[str, Any], Body(description="a relationship export (GET .../export)")],
) -> RelationshipOut:
    """Merge an export into the relationship with its persona: facts are added (duplicates
    once), gists are added as the user's own (extraction never rewrites them)."""
    try:
        data = RelationshipExport.model_validate(body)
    except ValidationError as exc:
        message, field = validation_error_fields(exc.errors())
        raise InvalidFieldError(message, field=field) from None
    view = await admin.merge(user.id, data.persona, personas, data.facts, data.gists)
    return relationship_out(view)
