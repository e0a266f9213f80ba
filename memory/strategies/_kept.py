"""Recalled turns kept in place across turns, so the KV cache keeps them (issue 13).

A recalling strategy's context is persona, pinned, relationship, *kept*, summary, recent,
*recalled*, new. What recall finds anew for a message ("recalled") sits after the recent buffer,
nearest the question; everything before it is the prefix the engine's cache serves, as long as
it does not change. After every reply the most relevant of that turn's new finds are appended
to the kept part as a chunk (the text before stays byte-identical), and the warm-up
(app/warmup.py: the Context of an empty message shows kept turns, they need no query) prefills
them while the user types, so the next turn prefills only its own finds and message. When the
best find no longer fits beside what is kept, the oldest chunk makes room for that turn's finds
from its end, at most once per REBUILD_AFTER replies; when the room shrinks, the newest chunks
are left out first. Kept turns come before the summary, which changes at every eviction.
While nothing is kept (a new session, the first turn after an import), a turn's finds go to
the kept slot at once, all but the best, which stays nearest the question (first_kept).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from memory.strategies._parts import Frame, RecallOrder, chunks_part, recalled_part
from memory.types import LLM, Context, ContextPart, MemoryState, StoredMessage

# Kept turns are chosen anew (the whole part prefilled again) at most once per this many
# replies: in between, new finds join them only while they fit, and show beside them otherwise.
REBUILD_AFTER = 8


def kept_part(frame: Frame, llm: LLM, exclude: set[int], limit: int) -> ContextPart | None:
    """The session's kept turns (state.kept) still to show: neither forgotten (`exclude`) nor
    in the recent buffer, still stored, as many chunks (oldest first) as fit in `limit`. None
    when none is left or fits (then all the room goes to what recall finds anew, and the next
    observe keeps anew from that)."""
    chunks = []
    seen = set(exclude)  # a state edited by hand may name a turn twice
    for ids in frame.req.state.kept:
        turns = []
        for i in ids:
            m = frame.turn(i) if i not in seen else None
            seen.add(i)
            if m is not None:
                turns.append(m)
        if turns:
            chunks.append(turns)
    # when the room shrank (a longer message, a grown recent buffer), the newest chunks go
    # first: what stays is still the same text, so the prompt's prefix still holds
    while chunks:
        part = chunks_part(frame, llm, "kept", chunks)
        if part.tokens <= limit:
            return part
        chunks.pop()
    return None


def first_kept(
    frame: Frame,
    llm: LLM,
    ranked: Sequence[int],
    best: Sequence[int],
    limit: int,
    kept_room: int,
    cut: Mapping[int, StoredMessage] | None = None,
    order: RecallOrder = "time",
) -> tuple[ContextPart | None, ContextPart | None]:
    """When no kept turn shows (a new session, the first turn after an import): the best
    find (`best`: the top hit and its neighbours) and what else fits beside the kept turns'
    room (`kept_room`, kept_cap) stay nearest the question; the rest go to the kept slot at
    once, where the reply would move them. Shown after the recent buffer first and kept
    after the reply, they moved in front of it: everything after the persona (~2,000 tokens)
    changed, and the next turn waited for it unless 8-9 s of typing let the warm-up prefill
    it (benchmarks/ttft.py, `vector` turn 2 after an import: 254 tokens on the clock, 1.61
    s). All of them in the kept slot cost the answers instead: English planted facts named
    11/24 -> 1/24 (benchmarks/answers.py), a 135M model answers from what is nearest the
    question. `cut`: shorter copies of turns, for the part nearest the question only (the kept
    part is the same text turn after turn)."""
    near = recalled_part(frame, llm, ranked, limit - kept_room, cut=cut, order=order)
    if near is None or not set(best) <= set(near.ranked):
        near = recalled_part(frame, llm, best, limit, cut=cut, order=order)
    shown = set(near.ranked) if near is not None else set()
    room = min(kept_room, limit - (near.tokens if near is not None else 0))
    rest = [i for i in ranked if i not in shown]
    kept = recalled_part(frame, llm, rest, room, kind="kept")
    if kept is not None:
        kept.ranked = []  # a kept part's order is its chunks'
    return kept, near


def kept_cap(limit: float, share: float, fresh_min: int, least_room: int = 0) -> int:
    """Of a recall room of `limit` tokens, what kept turns may take: their share, but never so
    much that less than `fresh_min` is left to what recall finds anew for the message, and
    nothing in a room under `least_room`."""
    if limit < least_room:
        return 0
    return max(0, min(int(limit * share), int(limit) - fresh_min))


def chunk_ids(part: ContextPart | None) -> list[list[int]]:
    """A kept part's message ids, chunk by chunk."""
    if part is None:
        return []
    ids = [m.id for m in part.messages if m.id is not None]
    out, at = [], 0
    for n in part.chunks:
        out.append(ids[at : at + n])
        at += n
    return [c for c in out if c]


def next_kept(
    state: MemoryState,
    context: Context,
    share: float,
    recall_max_tokens: int | None,
    fresh_min: int = 0,
    least_room: int = 0,
) -> None:
    """Set state.kept (and its age) after a reply generated from `context`."""
    parts = {p.kind: p for p in context.parts}
    kept, found = parts.get("kept"), parts.get("recalled")
    chunks = chunk_ids(kept)
    state.kept_age += 1
    if share <= 0:
        state.kept, state.kept_age = [], 0
        return
    if found is None or not found.ranked:
        state.kept = chunks  # the next prompt starts as this one did up to the recent buffer
        return
    # the room recall had: what the budget left after every other part, within its own cap
    # a float once compaction takes the oldest chunks' estimated costs (line_costs) off
    kept_tokens: float = kept.tokens if kept is not None else 0
    room = context.budget - context.total_tokens + kept_tokens + found.tokens
    limit = min(room, recall_max_tokens or room)
    cap = kept_cap(limit, share, fresh_min, least_room)
    if cap <= 0:  # a small room keeps nothing: what a session kept before goes at once
        state.kept, state.kept_age = [], 0
        return
    cost = line_costs(found)
    add = _greedy(found.ranked, cost, cap - kept_tokens)
    if not add or add[0] != found.ranked[0]:  # the best find does not fit beside
        if chunks and state.kept_age < REBUILD_AFTER:
            state.kept = chunks  # what recall finds anew shows it meanwhile
            return
        # compact: the oldest chunk's turns go, one by one from its end, until all of this
        # turn's finds fit. What follows the first turn gone is prefilled again (by the
        # warm-up, while the user types), so this happens at most once per REBUILD_AFTER
        # replies. Taken from the chunk's start, they left nothing in place: the first chunk
        # (a new session's first recall, ~1,800 tokens) and all after it, 2,070-2,370 tokens,
        # more than the warm-up prefills in 8 s of typing (benchmarks/ttft.py). It takes no
        # more than the finds need, so the part stays full and what recall finds anew for the
        # next message stays within its share (a part emptied at once left the whole recall
        # room to the next message's finds, ~1,600 tokens prefilled on the clock)
        old = line_costs(kept) if kept is not None else {}
        need = sum(cost[i] for i in found.ranked if i in cost)
        while chunks and kept_tokens + need > cap:
            kept_tokens -= old.get(chunks[0].pop(), 0.0)
            if not chunks[0]:
                chunks.pop(0)
        add = _greedy(found.ranked, cost, cap - kept_tokens)
        state.kept_age = 0
    state.kept = [*chunks, add] if add else chunks


def line_costs(part: ContextPart) -> dict[int, float]:
    """Each shown turn's share of the part's exact token count, by its length (an estimate:
    assemble counts the kept part exactly and drops it when it does not fit)."""
    lengths = {m.id: len(m.content) for m in part.messages if m.id is not None}
    total = sum(lengths.values()) or 1
    return {i: part.tokens * n / total for i, n in lengths.items()}


def _greedy(ranked: Sequence[int], cost: dict[int, float], room: float) -> list[int]:
    out = []
    for i in ranked:
        c = cost.get(i)
        if c is not None and c <= room:
            out.append(i)
            room -= c
    return out
