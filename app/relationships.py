"""Memory across sessions, as the service drives it: which sessions a session may recall from
(its memory scope), the relationship part of its context, the gists of past sessions, and the
greeting of a persona who already knows the user.

Scopes: "session" (only itself), "persona" (every session of the same user with the same
persona: the relationship; the default), "user" (all of the user's sessions). Every read is
filtered by the asking user's id in the store's own queries: another user's sessions are never
listed, so never recalled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.personas.model import Persona
from app.service.store import AsyncStore
from app.store.records import SessionRecord
from memory.relationship import (
    DEFAULT_RELATIONSHIP_TOKENS,
    RelationshipState,
    refresh_gist,
    render,
)
from memory.types import SCOPES, ContextMessage, MemoryScope, ScopeSession, StoredMessage

log = logging.getLogger(__name__)

# A live session's gist is re-extracted after this many new messages (every message would
# rewrite the relationship row each turn; the gist only matters to the user's other sessions,
# and starting a new session brings every gist fully up to date first).
GIST_EVERY_MESSAGES = 6


def scope_of(session: SessionRecord, persona: Persona) -> MemoryScope:
    scope = session.params.get("scope")
    return scope if scope in SCOPES else persona.memory.scope


def relationship_tokens(session: SessionRecord) -> int:
    cap = session.params.get("relationship_tokens")
    return cap if isinstance(cap, int) else DEFAULT_RELATIONSHIP_TOKENS


class Relationships:
    """The cross-session side of SessionMemory (the store through its async facade)."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store

    async def context_inputs(
        self, session: SessionRecord, persona: Persona, recalls: bool
    ) -> tuple[list[ContextMessage], int, list[ScopeSession]]:
        """What a context of `session` gets from beyond it: the relationship's lines, their
        token cap, and (for strategies that recall) the other sessions' turns."""
        scope = scope_of(session, persona)
        if scope == "session":
            return [], 0, []
        state = await self.store.get_relationship(session.user_id, session.persona_id)
        others: list[ScopeSession] = []
        if recalls:
            histories = await self.store.scope_histories(
                session.user_id, session.persona_id, scope, session.id, state.recall_after_id
            )
            # built, not validated: the store's own messages, 10k of them over 100 sessions
            others = [
                ScopeSession.model_construct(session=h.session.info(), history=h.history)
                for h in histories
                if h.history
            ]
        lines = render(state, session.id, persona.user_name)
        return lines, relationship_tokens(session), others

    async def refresh_gists(
        self, user_id: str, persona_id: str, exclude: str | None = None
    ) -> RelationshipState:
        """Bring the gist of every session of the pair up to date (a new session is starting:
        for the user, the others have ended). Extractive: no model call, milliseconds."""
        histories = await self.store.scope_histories(user_id, persona_id, "persona", exclude)

        def change(state: RelationshipState) -> RelationshipState | None:
            new = state
            for h in histories:
                new = refresh_gist(new, h.session.id, h.session.title, h.history) or new
            return new if new is not state else None

        return await self.store.update_relationship(user_id, persona_id, change)

    async def observed(self, session: SessionRecord, history: Sequence[StoredMessage]) -> None:
        """After a turn was observed: re-extract the session's gist every few messages."""
        if not history or session.params.get("scope") == "session":
            return
        state = await self.store.get_relationship(session.user_id, session.persona_id)
        gist = state.gist(session.id)
        through = gist.through_id if gist else state.recall_after_id
        fresh = [m for m in history if m.id > through]
        if len(fresh) < GIST_EVERY_MESSAGES or (gist is not None and gist.edited):
            return

        def change(state: RelationshipState) -> RelationshipState | None:
            return refresh_gist(state, session.id, session.title, history)

        await self.store.update_relationship(session.user_id, session.persona_id, change)

    async def rewrite_gist(self, session: SessionRecord, history: Sequence[StoredMessage]) -> None:
        """Extract the session's gist again from `history` (after the user made it forget a
        turn: the old gist may quote it). A gist the user wrote stays."""

        def change(state: RelationshipState) -> RelationshipState | None:
            gist = state.gist(session.id)
            if gist is None or gist.edited:
                return None
            cleared = state.without_session(session.id)
            return refresh_gist(cleared, session.id, session.title, history) or cleared

        await self.store.update_relationship(session.user_id, session.persona_id, change)

    async def greeting(self, session: SessionRecord, persona: Persona) -> str:
        """Her returning greeting once the relationship holds anything (another session with
        this user, or a fact to remember always), else her first-meeting greeting."""
        if not persona.returning_greeting or scope_of(session, persona) == "session":
            return persona.fill(persona.greeting)
        state = await self.store.get_relationship(session.user_id, session.persona_id)
        known = state.facts or any(g.session_id != session.id for g in state.gists)
        return persona.fill(persona.returning_greeting if known else persona.greeting)
