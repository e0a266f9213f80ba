"""`RelationshipAdmin`: what a persona remembers of the user across sessions, as the
relationship routes read and edit it. Each operation checks the persona, changes the state in
one store transaction and reads the result back; the routes call one of them and serialize.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.errors import InvalidFieldError, NotFoundError, TooLargeError
from app.personas.catalog import UserPersonas
from app.service.store import AsyncStore
from app.store.records import SessionRecord
from app.store.relationships import RelationshipRecord
from memory.relationship import MAX_FACTS, RelationshipFact, RelationshipState, SessionGist


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


@dataclass
class RelationshipView:
    """A relationship and the sessions the persona's memory of the user reaches."""

    persona_id: str
    state: RelationshipState
    sessions: list[SessionRecord]


class RelationshipAdmin:
    def __init__(self, store: AsyncStore) -> None:
        self.store = store

    async def _check_persona(self, user_id: str, persona_id: str, personas: UserPersonas) -> None:
        """404 for a persona the user has neither access to nor any memory with."""
        if persona_id in personas:
            return
        known = await self.store.list_relationships(user_id)
        if not any(r.persona_id == persona_id for r in known):
            raise NotFoundError(f"persona {persona_id!r} not found", field="persona_id")

    async def _view(self, user_id: str, persona_id: str) -> RelationshipView:
        state = await self.store.get_relationship(user_id, persona_id)
        sessions = await self.store.scope_sessions(user_id, persona_id, "persona")
        return RelationshipView(persona_id, state, [s for s, _ in sessions])

    async def list_relationships(self, user_id: str) -> list[RelationshipRecord]:
        return await self.store.list_relationships(user_id)

    async def get(self, user_id: str, persona_id: str, personas: UserPersonas) -> RelationshipView:
        await self._check_persona(user_id, persona_id, personas)
        return await self._view(user_id, persona_id)

    async def edit(
        self,
        user_id: str,
        persona_id: str,
        personas: UserPersonas,
        facts: Sequence[tuple[str, str | None]] | None = None,
        gists: Sequence[tuple[str, str]] = (),
    ) -> RelationshipView:
        """Replace the facts (text, session id) and/or rewrite gists (session id, text; an
        empty text forgets that session's gist)."""
        await self._check_persona(user_id, persona_id, personas)
        new = None if facts is None else [new_fact(text, sid) for text, sid in facts]

        def change(state: RelationshipState) -> RelationshipState:
            if new is not None:
                state = _with_facts(state, new)
            for session_id, text in gists:
                state = _edit_gist(state, session_id, text.strip(), "gists.session_id")
            return state

        await self.store.update_relationship(user_id, persona_id, change)
        return await self._view(user_id, persona_id)

    async def add_fact(
        self,
        user_id: str,
        persona_id: str,
        personas: UserPersonas,
        text: str,
        session_id: str | None,
    ) -> RelationshipView:
        await self._check_persona(user_id, persona_id, personas)
        if session_id is not None:  # 404 for a session that is not the user's
            await self.store.get_session(user_id, session_id)
        fact = new_fact(text, session_id)

        def change(state: RelationshipState) -> RelationshipState:
            return _with_facts(state, [*state.facts, fact])

        await self.store.update_relationship(user_id, persona_id, change)
        return await self._view(user_id, persona_id)

    async def forget_fact(self, user_id: str, persona_id: str, fact_id: str) -> None:
        def change(state: RelationshipState) -> RelationshipState:
            if not any(f.id == fact_id for f in state.facts):
                raise NotFoundError(f"no fact {fact_id!r} in this relationship", field="fact_id")
            return state.model_copy(update={"facts": [f for f in state.facts if f.id != fact_id]})

        await self.store.update_relationship(user_id, persona_id, change)

    async def forget_gist(self, user_id: str, persona_id: str, session_id: str) -> None:
        def change(state: RelationshipState) -> RelationshipState:
            return _edit_gist(state, session_id, "", "session_id")

        await self.store.update_relationship(user_id, persona_id, change)

    async def wipe(self, user_id: str, persona_id: str) -> None:
        """The facts and gists go, and no turn said so far is recalled across sessions."""
        top = await self.store.max_message_id()
        await self.store.update_relationship(
            user_id, persona_id, lambda _: RelationshipState(recall_after_id=top)
        )

    async def export(
        self, user_id: str, persona_id: str, personas: UserPersonas
    ) -> RelationshipState:
        await self._check_persona(user_id, persona_id, personas)
        return await self.store.get_relationship(user_id, persona_id)

    async def merge(
        self,
        user_id: str,
        persona_id: str,
        personas: UserPersonas,
        facts: Sequence[RelationshipFact],
        gists: Sequence[SessionGist],
    ) -> RelationshipView:
        """Merge an export into the relationship with its persona: facts are added
        (duplicates once), gists are added as the user's own (extraction never rewrites
        them)."""
        if persona_id not in personas:
            raise InvalidFieldError(
                f"persona {persona_id!r} is not known here; add it first (POST /v1/personas)",
                field="persona",
            )

        def change(state: RelationshipState) -> RelationshipState:
            state = _with_facts(state, [*state.facts, *facts])
            mine = {g.session_id for g in state.gists}
            added = [
                g.model_copy(update={"edited": True}) for g in gists if g.session_id not in mine
            ]
            return state.model_copy(
                update={"gists": sorted([*state.gists, *added], key=lambda g: g.ended_at)}
            )

        await self.store.update_relationship(user_id, persona_id, change)
        return await self._view(user_id, persona_id)
