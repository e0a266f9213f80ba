"""Relationships: what a persona remembers of the user across sessions. Read it, add and edit
the facts she remembers always, edit or forget a session's gist, wipe it, export and import it.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field, ValidationError

from app.deps import CurrentUser, PersonasDep, StoreDep
from app.errors import InvalidFieldError, NotFoundError, TooLargeError, validation_error_fields
from app.schemas import (
    ERRORS,
    FactIn,
    RelationshipList,
    RelationshipOut,
    RelationshipPatch,
    RelationshipSessionOut,
)
from app.store.repo import Store
from memory.relationship import MAX_FACTS, RelationshipFact, RelationshipState, SessionGist

router = APIRouter(prefix="/v1/relationships", tags=["relationships"], responses=ERRORS)

EXPORT_FORMAT: Final = "memento.relationship/1"


class RelationshipExport(BaseModel):
    format: Literal["memento.relationship/1"] = EXPORT_FORMAT
    persona: str = Field(min_length=1, max_length=100)
    exported_at: datetime | None = None
    facts: list[RelationshipFact] = Field(default_factory=list, max_length=MAX_FACTS)
    gists: list[SessionGist] = Field(default_factory=list, max_length=500)


def fact_id(text: str) -> str:
    return "rel:" + hashlib.sha1(text.encode()).hexdigest()[:10]


def new_fact(text: str, session_id: str | None) -> RelationshipFact:
    text = text.strip()
    if not text:
        raise InvalidFieldError("a fact must not be empty", field="text")
    return RelationshipFact(
        id=fact_id(text), text=text, session_id=session_id, created_at=datetime.now(UTC)
    )


def _with_facts(state: RelationshipState, facts: list[RelationshipFact]) -> RelationshipState:
    unique = list({f.id: f for f in facts}.values())
    if len(unique) > MAX_FACTS:
        raise TooLargeError(
            f"{len(unique)} facts to remember always; the limit is {MAX_FACTS}", field="facts"
        )
    return state.model_copy(update={"facts": unique})


def _edit_gist(
    state: RelationshipState, session_id: str, text: str, field: str
) -> RelationshipState:
    """The state with the session's gist rewritten by the user (an empty text forgets it);
    extraction never overwrites it again. 404 naming `field` when there is no such gist."""
    if state.gist(session_id) is None:
        raise NotFoundError(f"no gist of session {session_id!r} in this relationship", field=field)
    gists = [
        g.model_copy(update={"text": text, "edited": True}) if g.session_id == session_id else g
        for g in state.gists
    ]
    return state.model_copy(update={"gists": gists})


async def _check_persona(
    user_id: str, persona_id: str, store: Store, personas: PersonasDep
) -> None:
    """404 for a persona the user has neither access to nor any memory with."""
    if persona_id in personas:
        return
    known = await asyncio.to_thread(store.list_relationships, user_id)
    if not any(r.persona_id == persona_id for r in known):
        raise NotFoundError(f"persona {persona_id!r} not found", field="persona_id")


async def _out(user_id: str, persona_id: str, store: Store) -> RelationshipOut:
    state = await asyncio.to_thread(store.get_relationship, user_id, persona_id)
    sessions = await asyncio.to_thread(store.scope_sessions, user_id, persona_id, "persona")
    return RelationshipOut(
        persona=persona_id,
        facts=state.facts,
        gists=state.gists,
        sessions=[
            RelationshipSessionOut(
                id=s.id, title=s.title, created_at=s.created_at, updated_at=s.updated_at
            )
            for s, _ in sessions
        ],
        recall_after_id=state.recall_after_id,
    )


@router.get("", response_model=RelationshipList)
async def list_relationships(user: CurrentUser, store: StoreDep) -> RelationshipList:
    records = await asyncio.to_thread(store.list_relationships, user.id)
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
    persona_id: str, user: CurrentUser, store: StoreDep, personas: PersonasDep
) -> RelationshipOut:
    await _check_persona(user.id, persona_id, store, personas)
    return await _out(user.id, persona_id, store)


@router.patch("/{persona_id}", response_model=RelationshipOut)
async def patch_relationship(
    persona_id: str,
    body: RelationshipPatch,
    user: CurrentUser,
    store: StoreDep,
    personas: PersonasDep,
) -> RelationshipOut:
    """Replace the facts and/or rewrite gists (an empty text forgets that session's gist). A
    gist the user wrote is never overwritten by extraction."""
    await _check_persona(user.id, persona_id, store, personas)
    facts = None if body.facts is None else [new_fact(f.text, f.session_id) for f in body.facts]

    def change(state: RelationshipState) -> RelationshipState:
        if facts is not None:
            state = _with_facts(state, facts)
        for edit in body.gists or []:
            state = _edit_gist(state, edit.session_id, edit.text.strip(), "gists.session_id")
        return state

    await asyncio.to_thread(store.update_relationship, user.id, persona_id, change)
    return await _out(user.id, persona_id, store)


@router.post(
    "/{persona_id}/facts", status_code=status.HTTP_201_CREATED, response_model=RelationshipOut
)
async def add_fact(
    persona_id: str, body: FactIn, user: CurrentUser, store: StoreDep, personas: PersonasDep
) -> RelationshipOut:
    """A fact she remembers in every session with you (pinned "always")."""
    await _check_persona(user.id, persona_id, store, personas)
    if body.session_id is not None:  # 404 for a session that is not the user's
        await asyncio.to_thread(store.get_session, user.id, body.session_id)
    fact = new_fact(body.text, body.session_id)

    def change(state: RelationshipState) -> RelationshipState:
        return _with_facts(state, [*state.facts, fact])

    await asyncio.to_thread(store.update_relationship, user.id, persona_id, change)
    return await _out(user.id, persona_id, store)


@router.delete("/{persona_id}/facts/{fact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def forget_fact(
    persona_id: str, fact_id: str, user: CurrentUser, store: StoreDep
) -> Response:
    def change(state: RelationshipState) -> RelationshipState:
        if not any(f.id == fact_id for f in state.facts):
            raise NotFoundError(f"no fact {fact_id!r} in this relationship", field="fact_id")
        return state.model_copy(update={"facts": [f for f in state.facts if f.id != fact_id]})

    await asyncio.to_thread(store.update_relationship, user.id, persona_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{persona_id}/gists/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Forget a session's gist (it stays forgotten: extraction will not write it "
    "again). The session's turns stay recallable; forget them one by one or delete the session.",
)
async def forget_gist(
    persona_id: str, session_id: str, user: CurrentUser, store: StoreDep
) -> Response:
    def change(state: RelationshipState) -> RelationshipState:
        return _edit_gist(state, session_id, "", "session_id")

    await asyncio.to_thread(store.update_relationship, user.id, persona_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{persona_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Wipe the relationship: the facts and gists go, and no turn said so far is "
    "recalled across sessions any more. Each session keeps its own transcript and memory.",
)
async def wipe_relationship(persona_id: str, user: CurrentUser, store: StoreDep) -> Response:
    top = await asyncio.to_thread(store.max_message_id)
    await asyncio.to_thread(
        store.update_relationship,
        user.id,
        persona_id,
        lambda _: RelationshipState(recall_after_id=top),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{persona_id}/export", response_model=RelationshipExport)
async def export_relationship(
    persona_id: str, user: CurrentUser, store: StoreDep, personas: PersonasDep
) -> RelationshipExport:
    await _check_persona(user.id, persona_id, store, personas)
    state = await asyncio.to_thread(store.get_relationship, user.id, persona_id)
    return RelationshipExport(
        persona=persona_id, exported_at=datetime.now(UTC), facts=state.facts, gists=state.gists
    )


@router.post("/import", response_model=RelationshipOut)
async def import_relationship(
    user: CurrentUser,
    store: StoreDep,
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
    if data.persona not in personas:
        raise InvalidFieldError(
            f"persona {data.persona!r} is not known here; add it first (POST /v1/personas)",
            field="persona",
        )

    def change(state: RelationshipState) -> RelationshipState:
        state = _with_facts(state, [*state.facts, *data.facts])
        mine = {g.session_id for g in state.gists}
        gists = [
            g.model_copy(update={"edited": True}) for g in data.gists if g.session_id not in mine
        ]
        return state.model_copy(
            update={"gists": sorted([*state.gists, *gists], key=lambda g: g.ended_at)}
        )

    await asyncio.to_thread(store.update_relationship, user.id, data.persona, change)
    return await _out(user.id, data.persona, store)
