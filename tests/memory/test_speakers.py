"""Who speaks in a Context (memory/speakers.py): read back from the notes recall renders and from
the labels imported turns open with (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime

from memory.speakers import speakers_in, without_names
from memory.strategies._parts import render_recalled
from memory.types import StoredMessage


def turn(mid: int, role: str, content: str) -> StoredMessage:
    at = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
    return StoredMessage(id=mid, role=role, content=content, tokens=5, created_at=at)  # type: ignore[arg-type]


def test_the_speakers_of_recalled_notes_and_turn_labels() -> None:
    notes = render_recalled(
        [turn(1, "user", "Caroline: I went to a support group."), turn(2, "user", "밥 먹었어?")],
        "s1",
        user_name="아빠",
        assistant_name="Pippa",
    )
    texts = ["\n".join(m.content for m in notes), "Jon Snow: winter is coming", "note: no"]
    assert speakers_in(texts, ("아빠", "Pippa")) == ("아빠", "Pippa", "Caroline", "Jon Snow")


def test_lowercase_words_and_colons_inside_a_line_are_no_speakers() -> None:
    assert speakers_in(["see here: nothing", "Time is 5: late", "I said: Hello"]) == ()
    # a note's form counts only under a day's line: a pinned "- I said: ..." is text
    assert speakers_in(["Facts to keep in mind:\n- I said: no sugar"]) == ()


def test_the_speakers_of_notes_over_several_days_and_both_headers() -> None:
    day1, day2 = datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)
    chosen = [
        turn(1, "user", "옛날 얘기"),
        turn(2, "assistant", "응!"),
        turn(3, "user", "Melanie: 안녕"),
    ]
    chosen[0].session_id = "s0"
    chosen[0].created_at = chosen[1].created_at = day1
    chosen[2].created_at = day2
    notes = render_recalled(chosen, "s1", user_name="아빠", assistant_name="피파")
    assert speakers_in(["\n".join(m.content for m in notes)]) == ("아빠", "피파", "Melanie")


def test_a_query_loses_the_names_of_the_two_who_talk_and_their_particles() -> None:
    names = ("아빠", "Pippa")
    asked = without_names("아빠 제일 친한 친구가 누구였더라?", names)
    assert asked == "제일 친한 친구가 누구였더라?"
    assert without_names("Pippa야, 아빠한테 뭐라 그랬지?", names) == "뭐라 그랬지?"
    assert without_names("Dad, where did I park?", ("Dad",)) == "where did I park?"
    # other words that start alike stay; a query that is only a name stays whole
    assert without_names("What did Daddy Long say?", ("Dad",)) == "What did Daddy Long say?"
    assert without_names("아빠!", names) == "아빠!"
    assert without_names("Pippa야 ❤️", names) == "Pippa야 ❤️"
