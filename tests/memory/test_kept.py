"""Recalled turns kept in place across turns (memory/strategies/_kept.py): when the kept part
may change, how it grows, and how it makes room."""

from __future__ import annotations

from memory.strategies._kept import REBUILD_AFTER, chunk_ids, kept_cap, next_kept
from memory.types import Context, ContextMessage, ContextPart, MemoryState


def turns(kind: str, ids: list[int], tokens: int, **extra: object) -> ContextPart:
    messages = [ContextMessage(id=i, role="system", content="x" * 40) for i in ids]
    return ContextPart(kind=kind, tokens=tokens, messages=messages, **extra)  # type: ignore[arg-type]


def context(
    kept: list[list[int]], found: list[int], recent_front: int, kept_tokens: int = 0
) -> Context:
    parts = [ContextPart(kind="persona", tokens=100, messages=[])]
    if kept:
        ids = [i for c in kept for i in c]
        parts.append(turns("kept", ids, kept_tokens, chunks=[len(c) for c in kept]))
    parts.append(turns("recent", [recent_front, recent_front + 1], 50))
    if found:
        parts.append(turns("recalled", sorted(found), 10 * len(found), ranked=found))
    total = sum(p.tokens for p in parts)
    return Context(budget=total + 100, total_tokens=total, parts=parts)


def test_chunk_ids_split_a_kept_part_by_its_chunks() -> None:
    part = turns("kept", [1, 2, 3, 4], 40, chunks=[1, 3])
    assert chunk_ids(part) == [[1], [2, 3, 4]]
    assert chunk_ids(None) == []


def test_the_first_finds_are_kept_most_relevant_first_within_the_share() -> None:
    state = MemoryState(buffer_start_id=50)
    # recall room: 100 left + 100 found = 200; 0.35 of it kept: 70 tokens = 7 turns of 10
    next_kept(state, context([], [9, 3, 5, 1, 2, 4, 6, 7, 8, 10], 50), 0.35, None)
    assert state.kept == [[9, 3, 5, 1, 2, 4, 6]]


def test_kept_turns_stay_when_recall_found_nothing_new() -> None:
    state = MemoryState(buffer_start_id=50, kept=[[1, 2]])
    next_kept(state, context([[1, 2]], [], 50, kept_tokens=20), 0.9, None)
    assert state.kept == [[1, 2]]  # the next prompt's head is unchanged: so are they


def test_new_finds_join_as_a_chunk_after_every_reply() -> None:
    # the recent buffer did not move: the next prompt's head changes anyway, and the warm-up
    # prefills it while the user types (the recalled part after the buffer would be prefilled
    # on the clock at every turn instead)
    state = MemoryState(buffer_start_id=50, kept=[[1, 2]])
    next_kept(state, context([[1, 2]], [8, 7], 50, kept_tokens=20), 0.9, None)
    assert state.kept == [[1, 2], [8, 7]]


def test_a_full_part_makes_room_from_its_oldest_chunk_at_most_every_few_replies() -> None:
    kept = [[1, 2, 3], [4, 5, 6]]
    full = context(kept, [9], 50, kept_tokens=60)  # room 100 + 60 + 10: 0.4 of it is 68
    young = MemoryState(buffer_start_id=60, kept=kept, kept_age=0)
    next_kept(young, full, 0.4, None)
    assert young.kept == kept and young.kept_age == 1  # the best find shows beside them
    old = MemoryState(buffer_start_id=60, kept=kept, kept_age=REBUILD_AFTER)
    next_kept(old, full, 0.4, None)
    # only as much goes as the finds need: the part stays full, and the next message's own
    # finds stay within their share of the room; from the oldest chunk's end, so that what
    # comes before stays in place (the KV cache keeps it)
    assert old.kept == [[1, 2], [4, 5, 6], [9]] and old.kept_age == 0


def test_compaction_makes_room_for_all_of_the_turns_finds() -> None:
    kept = [[1, 2, 3, 4, 5, 6]]  # one chunk: the first turn's finds, kept whole
    full = context(kept, [9, 8, 7], 50, kept_tokens=72)  # cap: 0.4 of 202 is 80
    state = MemoryState(buffer_start_id=60, kept=kept, kept_age=REBUILD_AFTER)
    next_kept(state, full, 0.4, None)
    # the best find (10) did not fit beside 72: two turns of 12 go, not the whole chunk, and
    # from its end: the text of its first four stays as it was
    assert state.kept == [[1, 2, 3, 4], [9, 8, 7]]  # 48 kept + 30 found <= 80


def test_no_share_keeps_nothing() -> None:
    state = MemoryState(buffer_start_id=60, kept=[[1]])
    next_kept(state, context([[1]], [2], 50, kept_tokens=10), 0.0, None)
    assert state.kept == []


def test_kept_turns_leave_each_message_its_least_room() -> None:
    assert kept_cap(2000, 0.9, 256) == 1744  # a large room: the floor is below a tenth
    assert kept_cap(380, 0.9, 256) == 124  # Pippa at 1,024 tokens: a tenth is not one note
    assert kept_cap(200, 0.9, 256) == 0
    assert kept_cap(2000, 0.9, 0) == 1800


def test_the_least_room_caps_what_a_reply_keeps() -> None:
    state = MemoryState(buffer_start_id=50)
    # recall room 200, 0.9 of it 180, but 150 must stay fresh: 50 tokens = 5 turns of 10
    next_kept(state, context([], [9, 3, 5, 1, 2, 4, 6, 7, 8, 10], 50), 0.9, None, 150)
    assert state.kept == [[9, 3, 5, 1, 2]]
