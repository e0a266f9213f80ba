"""The cross-session benchmark's pure helpers: what counts as shown, how LoCoMo sittings and the
planted chats are laid out (no server, no model)."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from benchmarks.cross_session import (
    context_text,
    locomo_message,
    p50_p95,
    part_tokens,
    pick_questions,
    scale_sessions,
    shown_ids,
    sittings,
    tag_errors,
)
from benchmarks.planted_facts import ENGLISH, FACT_SLOTS, KOREAN, Planted, planted_sessions

CTX = {
    "parts": [
        {"kind": "persona", "tokens": 10, "messages": [{"id": None, "content": "You are"}]},
        {"kind": "relationship", "tokens": 5, "messages": [{"id": None, "content": "Mochi"}]},
        {"kind": "recalled", "tokens": 7, "messages": [{"id": 4, "content": "a"}]},
        {"kind": "recalled", "tokens": 3, "messages": [{"id": 9, "content": "b"}]},
        {"kind": "recent", "tokens": 2, "messages": [{"id": 12, "content": "c"}]},
        {"kind": "new", "tokens": 4, "messages": [{"id": None, "content": "question?"}]},
    ]
}


def turn(dia: str, speaker: str = "Ann", text: str = "hi") -> SimpleNamespace:
    return SimpleNamespace(dia=dia, speaker=speaker, text=text, at=datetime(2023, 5, 8, 13, 56))


def test_shown_ids_by_kind_and_all() -> None:
    assert shown_ids(CTX) == {4, 9, 12}
    assert shown_ids(CTX, ("recalled",)) == {4, 9}
    assert shown_ids(CTX, None) == {4, 9, 12}


def test_context_text_leaves_out_the_question_only() -> None:
    text = context_text(CTX)
    assert "Mochi" in text and "You are" in text and "question?" not in text


def test_part_tokens_sums_per_kind_and_zeroes_absent_parts() -> None:
    tokens = part_tokens(CTX)
    assert tokens["recalled"] == 10 and tokens["pinned"] == 0 and tokens["new"] == 4


def test_tag_errors_counts_recalled_lines_tagged_with_another_session() -> None:
    ctx = {
        "parts": [
            {"kind": "relationship", "messages": [{"id": None, "session_id": "s9"}]},
            {
                "kind": "recalled",
                "messages": [
                    {"id": 1, "session_id": "s1"},  # right
                    {"id": 2, "session_id": None},  # another session's turn shown as own
                    {"id": 3, "session_id": None},  # own turn: right
                    {"id": 4, "session_id": "s1"},  # unknown id
                ],
            },
            {"kind": "recent", "messages": [{"id": 5, "session_id": None}]},
        ]
    }
    assert tag_errors(ctx, {1: "s1", 2: "s2", 3: None, 5: None}) == (4, 2)


def test_percentiles() -> None:
    assert p50_p95([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx((3.0, 80.8))


def test_sittings_group_in_sitting_order_not_string_order() -> None:
    turns = [turn("D1:1"), turn("D1:2"), turn("D2:1"), turn("D10:1"), turn("D10:2")]
    assert [[t.dia for t in g] for g in sittings(turns)] == [
        ["D1:1", "D1:2"],
        ["D2:1"],
        ["D10:1", "D10:2"],
    ]


def test_locomo_message_as_memory_py_stores_it() -> None:
    m = locomo_message(turn("D1:1", "Bob", "hey [shares a dog]"), speaker_a="Ann")
    assert m == {
        "role": "assistant",
        "content": "Bob: hey [shares a dog]",
        "created_at": "2023-05-08T13:56:00",
    }
    assert locomo_message(turn("D1:2", "Ann"), speaker_a="Ann")["role"] == "user"


@pytest.mark.parametrize("p", [ENGLISH, KOREAN], ids=lambda p: p.language)
def test_planted_chats_tell_each_fact_once_two_per_chat(p: Planted) -> None:
    chats = planted_sessions(p)
    assert len(chats) == 4 and len(p.facts) == 8
    told = [
        (s, i, f)
        for s, chat in enumerate(chats)
        for i, (_, _, f) in enumerate(chat)
        if f is not None
    ]
    assert sorted(f for _, _, f in told) == list(range(8))
    for s, i, f in told:
        assert f // 2 == s and chats[s][i][0] == "user"  # the dad tells it
        assert 0 < i < len(chats[s]) - 2  # never a chat's first or last words
    for chat in chats:
        assert [r for r, _, _ in chat] == ["user", "assistant"] * (len(chat) // 2)
        assert len(chat) == 2 * (len(p.filler[0]) + len(FACT_SLOTS))


@pytest.mark.parametrize("p", [ENGLISH, KOREAN], ids=lambda p: p.language)
def test_planted_answers_are_only_in_the_telling(p: Planted) -> None:
    """Else "answer in context" would count a filler turn, a reply or the question itself."""
    others = [c for chat in planted_sessions(p) for r, c, f in chat if f is None]
    for fact in p.facts:
        assert fact.answer.lower() in fact.told.lower()
        assert len(fact.more) == 2 and fact.question not in fact.more
        for question in (fact.question, *fact.more):
            assert fact.answer.lower() not in question.lower()
        assert not [c for c in others if fact.answer.lower() in c.lower()]


def test_scale_sessions_cycle_the_pool_one_day_per_session() -> None:
    conv = SimpleNamespace(speaker_a="Ann", turns=[turn(f"D1:{i}", text=str(i)) for i in range(7)])
    sessions = scale_sessions([conv], n_sessions=3, per_session=5)
    assert [len(s) for s in sessions] == [5, 5, 5]
    flat = [m["content"] for s in sessions for m in s]
    assert flat[:8] == [f"Ann: {i}" for i in range(7)] + ["Ann: 0"]
    assert sessions[1][0]["created_at"] == "2023-01-02T09:00:00"


def test_pick_questions_distinct_and_spread() -> None:
    qs = [SimpleNamespace(text=f"q{i}") for i in range(100)]
    convs = [SimpleNamespace(questions=qs[:50]), SimpleNamespace(questions=qs[50:] + qs[:5])]
    picked = pick_questions(convs, 10)
    assert len(picked) == len(set(picked)) == 10 and picked[-1] == "q90"
