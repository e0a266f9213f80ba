"""What a persona remembers of one user across sessions: the relationship memory.

A session's own memory (summary, pins, recalled turns) ends with the session. The relationship
belongs to a (user, persona) pair and outlives them: facts the user asked her to remember
always, and a gist of each past session ("last time you told me ..."). It enters every context
of that pair as one part (kind "relationship") with its own token cap, after the persona's
pinned facts: it changes only between sessions, so it stays in the KV-cached head.

Gists are extractive. A 135M model writes summaries that drift from what was said; the user's
own sentences that state something about them ("my cat is called Jimmi", "나 다음 주에 부산
가") are what a returning conversation needs, and picking them costs no model call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from memory.bm25 import terms
from memory.types import ContextMessage, StoredMessage

DEFAULT_RELATIONSHIP_TOKENS = 192
MAX_RELATIONSHIP_TOKENS = 4096
MAX_FACTS = 200
GIST_MESSAGES = 3
GIST_MESSAGE_CHARS = 200

_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
# First-person markers: English pronouns, Korean 나/내/저/제/우리 at a word start.
_FIRST_PERSON = re.compile(
    r"\b(?:i|i'm|i've|i'd|i'll|my|me|mine|we|our|us)\b|(?:^|\s)(?:나|내|저|제|우리)", re.I
)
_SPECIFIC = re.compile(r"\d|(?<=\w\s)[A-Z][a-z]+")  # numbers, mid-sentence proper nouns


class RelationshipFact(BaseModel):
    """A fact the user asked the persona to remember in every session."""

    id: str
    text: str = Field(min_length=1, max_length=2000)
    session_id: str | None = None  # the session it was pinned in, if any
    created_at: datetime


class SessionGist(BaseModel):
    """What one past session was about, in the user's own words."""

    session_id: str
    title: str | None = None
    started_at: datetime
    ended_at: datetime
    text: str
    through_id: int = 0  # the last message id the gist has seen
    edited: bool = False  # the user wrote it: extraction never overwrites it


class RelationshipState(BaseModel):
    """Persisted per (user, persona) by the store as JSON."""

    facts: list[RelationshipFact] = Field(default_factory=list)
    gists: list[SessionGist] = Field(default_factory=list)
    # After a wipe: turns with ids up to this one are never recalled across sessions.
    recall_after_id: int = 0

    def gist(self, session_id: str) -> SessionGist | None:
        return next((g for g in self.gists if g.session_id == session_id), None)

    def without_session(self, session_id: str) -> RelationshipState:
        """The state once a session is deleted: its gist goes; facts the user pinned to be
        remembered always stay (they are the user's word, shown with where they came from)."""
        return self.model_copy(
            update={"gists": [g for g in self.gists if g.session_id != session_id]}
        )


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def _score(text: str) -> float:
    """How much a message says about the user: content words, first person, specifics."""
    content = len(set(terms(text)))
    if content < 2:
        return 0.0
    score = min(content, 8) + 3.0 * bool(_FIRST_PERSON.search(text))
    score += 2.0 * bool(_SPECIFIC.search(text))
    if all(s.endswith(("?", "？")) for s in _sentences(text)):
        score -= 4.0  # a question asks; it rarely tells
    return score


def _clip(text: str, limit: int = GIST_MESSAGE_CHARS) -> str:
    """The message's first sentences within `limit` characters (one cut sentence at worst)."""
    out = ""
    for s in _sentences(text):
        if out and len(out) + 1 + len(s) > limit:
            break
        out = f"{out} {s}".strip()
    return out[:limit]


def extract_gist(messages: Sequence[StoredMessage], n: int = GIST_MESSAGES) -> str:
    """The user's n most telling messages of a session, in the order they were said. A whole
    message, not a sentence, is the unit: "3일 동안 있을 거야" means nothing without the
    sentence before it."""
    scored: list[tuple[float, int, str]] = []
    seen: set[str] = set()
    for i, m in enumerate(messages):
        text = _clip(" ".join(m.content.split()))
        if m.role != "user" or not text or text.lower() in seen:
            continue
        seen.add(text.lower())
        score = _score(text)
        if score > 0:  # where a session ended is what "last time" picks up from
            scored.append((score + 2.0 * i / len(messages), len(scored), text))
    best = sorted(scored, key=lambda x: (-x[0], x[1]))[:n]
    return " / ".join(s for _, _, s in sorted(best, key=lambda x: x[1]))


def refresh_gist(
    state: RelationshipState,
    session_id: str,
    title: str | None,
    history: Sequence[StoredMessage],
) -> RelationshipState | None:
    """The state with the session's gist brought up to date, or None when it already is (or
    the user edited it, or there is nothing the user said since the last wipe)."""
    history = [m for m in history if m.id > state.recall_after_id]
    if not history:
        return None
    old = state.gist(session_id)
    last = history[-1].id
    if old is not None and (old.edited or old.through_id >= last):
        return None
    text = extract_gist(history)
    if not text:
        return None
    gist = SessionGist(
        session_id=session_id,
        title=title,
        started_at=history[0].created_at,
        ended_at=history[-1].created_at,
        text=text,
        through_id=last,
    )
    others = [g for g in state.gists if g.session_id != session_id]
    gists = sorted([*others, gist], key=lambda g: g.ended_at)
    return state.model_copy(update={"gists": gists})


def render(state: RelationshipState, session_id: str, user_name: str) -> list[ContextMessage]:
    """The relationship as context lines, most important first (the part keeps a prefix of
    them when its cap is small): the always-facts, then the other sessions' gists, newest
    first. The first line carries the header; each line names the session it came from."""
    lines: list[ContextMessage] = []
    for f in state.facts:
        lines.append(ContextMessage(role="system", content=f"- {f.text}", session_id=f.session_id))
    gists = [g for g in reversed(state.gists) if g.session_id != session_id and g.text]
    for i, g in enumerate(gists):
        when = g.ended_at.date().isoformat()
        lead = "Last time" if i == 0 else "Earlier"
        lines.append(
            ContextMessage(
                role="system",
                content=f"- {lead} ({when}) {user_name} said: {g.text}",
                created_at=g.ended_at,
                session_id=g.session_id,
            )
        )
    if lines:
        header = f"What you remember of {user_name} from your earlier conversations:\n"
        lines[0] = lines[0].model_copy(update={"content": header + lines[0].content})
    return lines
