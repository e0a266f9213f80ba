"""Building blocks every strategy assembles its Context from.

Token accounting: count(messages) == count_overhead() + sum(count_message(m)) when the first
message is a system message (the persona always is). Stored messages carry their own count,
so only what is rendered fresh here (persona, pinned facts, summary, recalled lines, the new
message) is tokenized: O(what is shown), never O(history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from memory.budget import fit_text, position_of
from memory.persona import fitting_examples, with_examples
from memory.speakers import day_line, note_prefix, split_label
from memory.strategies._count import count_message
from memory.strategies._lore import LORE_SHARE, lore_notes, lore_part
from memory.summarizer import render_summary
from memory.types import (
    LLM,
    PART_ORDER,
    AssembleRequest,
    Context,
    ContextMessage,
    ContextOverflowError,
    ContextPart,
    MemoryStrategyError,
    PartKind,
    PinnedFact,
    Role,
    StoredMessage,
)

# Recalled turns are dated third-person notes under a line that says what they are: as
# "[date] user: ..." transcript lines a small model took them for the chat itself, went on with
# the transcript and spoke as the user (issue 12: "... episode. user: Do you have any th").
RECALL_HEADER = "Notes on what was said earlier in this conversation (memory, not the chat):\n"
SCOPE_HEADER = "Notes from your earlier conversations (memory, not the chat):\n"
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
RELATIONSHIP_SHARE = 3  # the relationship part takes at most 1/3 of the room left


@dataclass
class Frame:
    """What every context has (persona, pinned facts, the new message) and what is left."""

    req: AssembleRequest
    history: list[StoredMessage]  # the request's history minus forgotten messages
    overhead: int
    persona: ContextPart
    pinned: ContextPart | None
    new: ContextPart
    relationship: ContextPart | None = None
    lore: ContextPart | None = None
    notes: list[str] = field(default_factory=list)  # for the inspector (Context.notes)
    # turns of the other sessions in the memory scope, by id (built on first use)
    _scope_turns: dict[int, StoredMessage] | None = None

    @property
    def remaining(self) -> int:
        fixed = self.overhead + self.persona.tokens + self.new.tokens
        optional = sum(
            p.tokens for p in (self.pinned, self.relationship, self.lore) if p is not None
        )
        return self.req.budget - fixed - optional

    def turn(self, message_id: int) -> StoredMessage | None:
        """A recallable turn by id: this session's (not forgotten) or a scope session's."""
        p = position_of(self.history, message_id)
        if p < len(self.history) and self.history[p].id == message_id:
            return self.history[p]
        if self._scope_turns is None:  # no copies: 10k turns over 100 sessions, every turn
            self._scope_turns = {m.id: m for s in self.req.scope for m in s.history}
        return self._scope_turns.get(message_id)


def rendered_part(llm: LLM, kind: PartKind, role: Role, content: str) -> ContextPart:
    message = ContextMessage(role=role, content=content)
    tokens = count_message(llm, role, content)
    return ContextPart(kind=kind, tokens=tokens, messages=[message])


def pinned_text(facts: Sequence[PinnedFact]) -> str | None:
    known = [f.text.strip() for f in facts if f.source != "style" and f.text.strip()]
    style = [f.text.strip() for f in facts if f.source == "style" and f.text.strip()]
    blocks = []
    if known:
        blocks.append("Facts to keep in mind:\n" + "\n".join(f"- {t}" for t in known))
    if style:
        blocks.append("Style rules (always follow them):\n" + "\n".join(f"- {t}" for t in style))
    return "\n".join(blocks) or None


def start_frame(llm: LLM, req: AssembleRequest) -> Frame:
    """Persona, pinned facts and the new message; ContextOverflowError if they alone overflow."""
    forgotten = set(req.state.forgotten)
    history = [m for m in req.history if m.id not in forgotten] if forgotten else req.history
    text = pinned_text([*req.persona_pinned, *req.state.pinned])
    pinned = rendered_part(llm, "pinned", "system", text) if text else None
    new = rendered_part(llm, "new", "user", req.new_message)
    overhead = llm.count_overhead()
    lines = req.example_dialogue
    # the example dialogue yields to a message that would not fit beside it (memory/persona.py)
    room = req.budget - overhead - new.tokens - (pinned.tokens if pinned else 0)
    shown = fitting_examples(
        req.system_prompt, lines, room, lambda t: count_message(llm, "system", t)
    )
    frame = Frame(
        req=req,
        history=list(history),
        overhead=overhead,
        persona=rendered_part(
            llm, "persona", "system", with_examples(req.system_prompt, lines[:shown])
        ),
        pinned=pinned,
        new=new,
    )
    if frame.remaining < 0:
        what = "message with the pinned facts" if frame.pinned else "message"
        raise ContextOverflowError(req.budget - frame.remaining, req.budget, what)
    if shown < len(lines):
        frame.notes.append(
            f"{shown} of the persona's {len(lines)} example lines shown: the rest would not "
            f"fit beside this message in a {req.budget:,}-token budget"
        )
    # at most a third of the room the fixed parts leave: in a small window the relationship's
    # gists must not starve the turns recall finds (Pippa at 1,024 tokens: 630 are persona and
    # pinned facts, so a 192-token relationship left recall ~140)
    cap = min(req.relationship_tokens, frame.remaining // RELATIONSHIP_SHARE)
    frame.relationship = relationship_part(llm, req.relationship, cap)
    # then the lore entries that fire, at most a third of what is left (memory/strategies/_lore)
    lore_cap = min(req.lore_tokens, frame.remaining // LORE_SHARE)
    frame.lore = lore_part(llm, req, frame.history, lore_cap)
    return frame


def relationship_part(llm: LLM, lines: Sequence[ContextMessage], limit: int) -> ContextPart | None:
    """The longest prefix of the relationship lines (most important first) within `limit`."""
    if limit <= 0 or not lines:
        return None
    best: ContextPart | None = None
    for n in range(1, len(lines) + 1):
        part = ContextPart(kind="relationship", tokens=0, messages=list(lines[:n]))
        part.tokens = count_message(llm, "system", part.to_messages()[0]["content"])
        if part.tokens > limit:
            break
        best = part
    return best


def stored_message(m: StoredMessage, content: str | None = None) -> ContextMessage:
    role = m.role if content is None else "system"
    return ContextMessage(
        id=m.id,
        role=role,
        content=m.content if content is None else content,
        created_at=m.created_at,
    )


def recent_part(messages: Sequence[StoredMessage]) -> ContextPart | None:
    if not messages:
        return None
    return ContextPart(
        kind="recent",
        tokens=sum(m.tokens for m in messages),
        messages=[stored_message(m) for m in messages],
    )


def summary_part(llm: LLM, summary: str, covers: list[int], limit: int) -> ContextPart | None:
    """The running summary as one system message, cut at sentence boundaries to fit `limit`."""
    if not summary.strip() or limit <= 0:
        return None

    def cost(text: str) -> int:
        return count_message(llm, "system", render_summary(text))

    text = fit_text(summary, lambda t: cost(t) <= limit)
    if not text:
        return None
    part = rendered_part(llm, "summary", "system", render_summary(text))
    part.covers = list(covers)
    return part


def spoken_date(m: StoredMessage) -> str:
    d = m.created_at.date()
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def speaker_and_text(m: StoredMessage, user_name: str, assistant_name: str) -> tuple[str, str]:
    """Who said it and what: a leading speaker label of the stored text wins over the role."""
    speaker, text = split_label(m.content, (user_name, assistant_name))
    if speaker is not None:
        return speaker, text
    return (user_name if m.role == "user" else assistant_name), m.content


def recall_prefix(m: StoredMessage, user_name: str, assistant_name: str) -> str:
    speaker, _ = speaker_and_text(m, user_name, assistant_name)
    return note_prefix(speaker)


def recall_line(m: StoredMessage, user_name: str, assistant_name: str) -> str:
    """A recalled turn's note, without its date: that is on its day's line (render_recalled)."""
    speaker, text = speaker_and_text(m, user_name, assistant_name)
    return note_prefix(speaker) + text


# How what recall finds for a message shows (RecallParams.recall_order): "time" as said; "rank"
# the least relevant first, the best last, nearest the question; "day" a day's finds together,
# in the order said, the day of the best find last.
RecallOrder = Literal["time", "rank", "day"]


def _shown(chosen: Sequence[StoredMessage], order: RecallOrder) -> list[StoredMessage]:
    """`chosen` (best first) in the order `order` shows it."""
    if order == "rank":
        return list(reversed(chosen))
    if order == "time":
        return sorted(chosen, key=lambda m: m.id or 0)
    best: dict[str | None, int] = {}
    for i, m in enumerate(chosen):
        best.setdefault(spoken_date(m), i)
    return sorted(chosen, key=lambda m: (-best[spoken_date(m)], m.id or 0))


def render_recalled(
    chosen: Sequence[StoredMessage],
    session_id: str,
    user_name: str = "User",
    assistant_name: str = "Assistant",
    order: RecallOrder = "time",
) -> list[ContextMessage]:
    """Recalled turns in `order` (time: as said), one note each carrying its id (the engine sees
    them joined into one system message: ContextPart.to_messages). Notes of one day sit under
    one "On 2 March 2024:" line, carried by the first of them: the date on every note cost ~9
    tokens a line, a turn in every three or four Korean ones at Pippa's 1,024 (issue 11). Turns
    of earlier sessions come first under their own header, so neither the model nor the user
    takes then for now; each header starts its days anew, so a chunk rendered on its own
    (chunks_part) reads whole. `chosen` is best first; `order` (RecallOrder) says how each
    group shows it (by rank: a day's line wherever the day changes)."""
    out: list[ContextMessage] = []
    other = {m.id for m in chosen if m.session_id not in (None, session_id)}
    shown = _shown(chosen, order)
    earlier = [m for m in shown if m.id in other]
    own = [m for m in shown if m.id not in other]
    for header, group in ((SCOPE_HEADER, earlier), (RECALL_HEADER, own)):
        day = None
        for i, m in enumerate(group):
            date = spoken_date(m)
            lead = (header if i == 0 else "") + (day_line(date) + "\n" if date != day else "")
            day = date
            msg = stored_message(m, lead + recall_line(m, user_name, assistant_name))
            msg.session_id = m.session_id if m.id in other else None
            out.append(msg)
    return out


def choose_recalled(
    frame: Frame,
    llm: LLM,
    ranked_ids: Sequence[int],
    budget: int,
    cut: Mapping[int, StoredMessage] | None = None,
) -> list[StoredMessage]:
    """Greedy fill: the most relevant first, skipping what does not fit in `budget` tokens.

    Costs are estimated from the stored counts (the message's text, its note prefix and a line
    break), plus each header and day line once, when the first turn under it is chosen (turns
    in time order put a day's notes together); the caller counts the rendered part exactly
    (recalled_part). A turn in `cut` shows as that shorter copy (memory/trim.py).
    """
    empty = count_message(llm, "system", "")
    budget -= empty  # the one system message they are joined into

    def line(text: str) -> int:  # a line of the joined message, its line break included
        if text not in costs:
            costs[text] = count_message(llm, "system", "\n" + text) - empty
        return costs[text]

    # a note's prefix ("- 아빠 said: ") costs the same for every turn of that speaker, a day's
    # line the same for every turn of that day: counted once each (the exact count in
    # recalled_part catches merges)
    names = frame.req.user_name, frame.req.assistant_name
    costs: dict[str, int] = {}
    paid: set[str] = set()  # the headers and the (header, day) lines already counted
    chosen: list[StoredMessage] = []
    seen: set[int] = set()
    for mid in ranked_ids:
        m = frame.turn(mid) if mid not in seen else None
        if m is None:
            continue  # unknown or forgotten id: never shown
        m = cut.get(mid, m) if cut else m
        seen.add(mid)
        # prefix + line break - the stored message's wrapper. The prefix's trailing space is
        # counted with the text (" 우리" is a word with its space): with it the estimate was
        # ~2.8 tokens a note over the exact count, without it ~1.8 and never under in 300
        # random Korean/English sets; +1: a merge across the seam
        prefix = recall_prefix(m, *names).rstrip()
        cost = m.tokens - count_message(llm, m.role, "") + line(prefix) + 1
        own = m.session_id in (None, frame.req.session.id)
        header = RECALL_HEADER if own else SCOPE_HEADER
        day = day_line(spoken_date(m))
        heads = {header: header.rstrip("\n"), header + day: day}
        new = [k for k in heads if k not in paid]
        cost += sum(line(heads[k]) for k in new)
        if cost <= budget:
            chosen.append(m)
            paid.update(new)
            budget -= cost
    return chosen


def chunks_part(
    frame: Frame,
    llm: LLM,
    kind: PartKind,
    chunks: Sequence[Sequence[StoredMessage]],
    order: RecallOrder = "time",
) -> ContextPart:
    """Recalled turns rendered chunk by chunk (render_recalled), counted exactly: appending a
    chunk leaves the text of the ones before unchanged. The engine sees them as one system
    message, counted as relationship_part counts its own (memoized: kept turns are the same
    text turn after turn)."""
    req = frame.req
    names = req.session.id, req.user_name, req.assistant_name
    part = ContextPart(
        kind=kind,
        tokens=0,
        messages=[m for c in chunks for m in render_recalled(c, *names, order=order)],
        chunks=[len(c) for c in chunks] if kind == "kept" else [],
    )
    part.tokens = count_message(llm, "system", part.to_messages()[0]["content"])
    return part


def recalled_part(
    frame: Frame,
    llm: LLM,
    ranked_ids: Sequence[int],
    limit: int,
    kind: PartKind = "recalled",
    cut: Mapping[int, StoredMessage] | None = None,
    order: RecallOrder = "time",
) -> ContextPart | None:
    """The most relevant of `ranked_ids` that fit in `limit` tokens, shown in `order` (as one
    chunk of `kind`; those in `cut` as their shorter copies); an estimate that BPE merges or
    a day's line said again proved short drops the least relevant turn and recounts."""
    chosen = choose_recalled(frame, llm, ranked_ids, limit, cut) if limit > 0 else []
    while chosen:
        part = chunks_part(frame, llm, kind, [chosen], order)
        if part.tokens <= limit:
            part.ranked = [m.id for m in chosen]
            return part
        chosen.pop()  # the least relevant
    return None


def finish(frame: Frame, *parts: ContextPart | None) -> Context:
    """Order the parts, total them exactly, and check the budget (a miss here is a bug)."""
    present = [frame.persona, frame.pinned, frame.relationship, frame.lore, *parts, frame.new]
    ordered = sorted((p for p in present if p is not None), key=lambda p: PART_ORDER.index(p.kind))
    total = frame.overhead + sum(p.tokens for p in ordered)
    if total > frame.req.budget:
        raise MemoryStrategyError(
            f"assembled {total} tokens for a budget of {frame.req.budget} (strategy bug)"
        )
    return Context(
        budget=frame.req.budget,
        total_tokens=total,
        parts=ordered,
        notes=[*frame.notes, *lore_notes(frame.lore)],
    )
