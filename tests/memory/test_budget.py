"""Fitting stored messages into budgets: turn boundaries, chunked eviction, sentence cuts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from memory_fakes import conversation, message

from memory.budget import (
    chunked_cut,
    fit_text,
    is_turn_start,
    last_turns_start,
    newest_fit,
    position_of,
    snap_forward,
    split_sentences,
    tokens_of,
    turns_in,
)


def test_a_cut_never_orphans_an_assistant_reply() -> None:
    h = [message(1, "user", "a"), message(2, "assistant", "b"), message(3, "assistant", "c")]
    assert [is_turn_start(h, i) for i in range(4)] == [True, False, True, True]
    assert snap_forward(h, 1) == 2


def test_position_of_lands_on_the_next_message_after_a_deletion() -> None:
    h = [message(i, "user", "x") for i in (2, 5, 9)]
    assert position_of(h, None) == 0
    assert position_of(h, 5) == 1
    assert position_of(h, 6) == 2  # message 6 was deleted: the cut moves to 9
    assert position_of(h, 10) == 3


def test_newest_fit_keeps_whole_turns_from_the_end() -> None:
    h = conversation(5, chars=40)  # each message 14 tokens
    assert newest_fit(h, 28) == 8  # exactly the last turn
    assert newest_fit(h, 41) == 8  # a reply alone is never kept without its question
    assert newest_fit(h, 10) == 10  # nothing fits
    assert newest_fit(h, 10_000, start=4) == 4


def test_chunked_cut_holds_until_full_then_drops_to_evict_to() -> None:
    h = conversation(10, chars=40)  # 20 messages x 14 tokens = 280
    assert chunked_cut(h, 0, 280, 0.7) == 0
    cut = chunked_cut(h, 0, 279, 0.7)
    assert tokens_of(h, cut) <= 0.7 * 279
    assert tokens_of(h, cut - 2) > 0.7 * 279  # it dropped no more than needed
    assert is_turn_start(h, cut)


def test_chunked_cut_keeps_its_cut_while_the_buffer_grows() -> None:
    h = conversation(40, chars=40)
    cuts, start = [], 0
    for end in range(2, len(h) + 1, 2):
        start = chunked_cut(h[:end], start, 200, 0.7)
        cuts.append(start)
    moves = sum(1 for a, b in zip(cuts, cuts[1:], strict=False) if a != b)
    # 28 tokens a turn, 200-token buffer, refilled from 140: one eviction per ~3 turns, not 1
    assert 0 < moves <= len(cuts) // 2


def test_last_turns_start_and_turns_in() -> None:
    h = conversation(6)
    assert last_turns_start(h, 2) == 8
    assert turns_in(h, 8) == 2
    assert last_turns_start(h, 100) == 0
    assert last_turns_start(h, 0) == len(h)


def test_fit_text_cuts_at_sentence_boundaries() -> None:
    text = "One fact. Two facts here! Three? Four is the last."
    assert split_sentences(text) == ["One fact.", "Two facts here!", "Three?", "Four is the last."]
    assert fit_text(text, lambda t: len(t) <= 30) == "One fact. Two facts here!"
    assert fit_text(text, lambda t: len(t) <= 30, keep="tail") == "Three? Four is the last."
    assert fit_text(text, lambda t: len(t) <= 3) == ""
    assert fit_text(text, lambda t: True) == text
    notes = "- Tom lives in Busan. He is a nurse.\n- Bo is sick!\n- Vet on Friday."
    assert (
        fit_text(notes, lambda t: len(t) <= 50)
        == "- Tom lives in Busan. He is a nurse.\n- Bo is sick!"
    )
    assert fit_text(notes, lambda t: len(t) <= 30, keep="tail") == "- Bo is sick!\n- Vet on Friday."


sizes = st.lists(st.integers(min_value=0, max_value=400), min_size=0, max_size=60)
roles = st.lists(st.sampled_from(["user", "assistant", "system"]), min_size=60, max_size=60)


@given(sizes, roles, st.integers(min_value=0, max_value=3000), st.floats(0.05, 1.0))
def test_chunked_cut_always_fits_and_respects_pairs(
    chars: list[int], rs: list[str], limit: int, evict_to: float
) -> None:
    h = [message(i + 1, rs[i], "x" * c) for i, c in enumerate(chars)]
    for start in (0, len(h) // 2):
        cut = chunked_cut(h, start, limit, evict_to)
        assert start <= cut <= len(h)
        assert tokens_of(h, cut) <= limit
        assert is_turn_start(h, cut)
        if cut > snap_forward(h, start):  # it evicted: down to evict_to, not further
            assert tokens_of(h, cut) <= int(limit * evict_to)
            prev = max(i for i in range(cut) if is_turn_start(h, i))
            assert tokens_of(h, prev) > int(limit * evict_to)
