"""How recalled turns read to the model (memory/strategies/_parts.py render_recalled): third-person
notes under a header that says they are memory, speakers named (issue 12), grouped under one line
per day (issue 11: the date on every note cost Pippa's small budget a turn in three or four)."""

from __future__ import annotations

from datetime import datetime

from memory.strategies._parts import RECALL_HEADER, SCOPE_HEADER, render_recalled
from memory.types import StoredMessage


def turn(mid: int, role: str, content: str, at: datetime, session: str | None = None):  # type: ignore[no-untyped-def]
    return StoredMessage(
        id=mid, role=role, content=content, tokens=5, created_at=at, session_id=session
    )  # type: ignore[arg-type]


def test_notes_are_dated_and_name_the_speakers() -> None:
    chosen = [
        turn(7, "assistant", "A kitten!! Send me pictures.", datetime(2024, 3, 2, 9, 1)),
        turn(6, "user", "We named her Mochi.", datetime(2024, 3, 2, 9, 0)),
    ]
    out = render_recalled(chosen, "s1", user_name="아빠", assistant_name="Pippa")
    assert [m.id for m in out] == [6, 7]  # time order, whatever the rank order
    assert out[0].content == RECALL_HEADER + "On 2 March 2024:\n- 아빠 said: We named her Mochi."
    assert out[1].content == "- Pippa said: A kitten!! Send me pictures."  # the same day
    assert "user:" not in "\n".join(m.content for m in out)


def test_a_speaker_label_in_the_text_names_the_speaker() -> None:
    chosen = [
        turn(1, "user", "Caroline: I went to a support group.", datetime(2023, 5, 8, 13, 56)),
        turn(2, "assistant", "Melanie: That's great!", datetime(2023, 5, 8, 13, 57)),
        turn(3, "user", "아빠: 오늘 좀 피곤하네.", datetime(2023, 5, 9)),
        turn(4, "user", "note: lowercase is not a name", datetime(2023, 5, 9)),
    ]
    lines = [m.content for m in render_recalled(chosen, "s1", "아빠", "Pippa")]
    assert lines[0].endswith("On 8 May 2023:\n- Caroline said: I went to a support group.")
    assert lines[1] == "- Melanie said: That's great!"
    assert lines[2] == "On 9 May 2023:\n- 아빠 said: 오늘 좀 피곤하네."
    assert lines[3] == "- 아빠 said: note: lowercase is not a name"


def test_earlier_sessions_come_first_under_their_own_header() -> None:
    chosen = [
        turn(9, "user", "today's news", datetime(2024, 3, 14)),
        turn(2, "user", "old news", datetime(2024, 3, 2), session="s0"),
    ]
    out = render_recalled(chosen, "s1", "Dad", "Pippa")
    assert out[0].content == SCOPE_HEADER + "On 2 March 2024:\n- Dad said: old news"
    assert out[0].session_id == "s0" and out[1].session_id is None
    assert out[1].content.startswith(RECALL_HEADER + "On 14 March 2024:\n- Dad said:")


def test_each_header_starts_its_days_anew() -> None:
    """The same day under both headers is said under each: "then" and "now" read whole."""
    chosen = [
        turn(2, "user", "아까 말한 거", datetime(2024, 3, 2, 9), session="s0"),
        turn(9, "assistant", "응 기억나", datetime(2024, 3, 2, 21)),
    ]
    out = [m.content for m in render_recalled(chosen, "s1", "아빠", "피파")]
    assert out == [
        SCOPE_HEADER + "On 2 March 2024:\n- 아빠 said: 아까 말한 거",
        RECALL_HEADER + "On 2 March 2024:\n- 피파 said: 응 기억나",
    ]


def test_a_korean_conversation_over_days_says_each_day_once() -> None:
    at = datetime(2024, 12, 31, 23, 58)
    chosen = [
        turn(1, "user", "아빠 왔다! 오늘 회사에서 힘들었어.", at),
        turn(2, "assistant", "고생했어 아빠~ 푹 쉬어 😴", at.replace(minute=59)),
        turn(3, "user", "새해 복 많이 받아!", datetime(2025, 1, 1, 0, 1)),
        turn(4, "assistant", "아빠도!! 🎉", datetime(2025, 1, 1, 0, 2)),
        turn(5, "user", "떡국 먹었어?", datetime(2025, 1, 1, 9)),
    ]
    out = render_recalled(chosen, "s1", "아빠", "Pippa")
    assert [m.id for m in out] == [1, 2, 3, 4, 5]  # each note keeps its stored id
    assert "\n".join(m.content for m in out) == RECALL_HEADER + "\n".join(
        [
            "On 31 December 2024:",
            "- 아빠 said: 아빠 왔다! 오늘 회사에서 힘들었어.",
            "- Pippa said: 고생했어 아빠~ 푹 쉬어 😴",
            "On 1 January 2025:",
            "- 아빠 said: 새해 복 많이 받아!",
            "- Pippa said: 아빠도!! 🎉",
            "- 아빠 said: 떡국 먹었어?",
        ]
    )


def test_a_new_chunk_of_the_same_day_leaves_the_text_before_unchanged() -> None:
    """Kept turns stay in the KV cache across turns: a chunk appended later, even of the same
    day, says its own day's line rather than joining (and so rewriting) the chunk before."""
    from memory_fakes import FakeLLM, request

    from memory.strategies._parts import chunks_part, start_frame

    day = datetime(2024, 3, 2, 9)
    a = [turn(1, "user", "나비 밥 줬어?", day), turn(2, "assistant", "응 줬어!", day)]
    b = [turn(5, "user", "산책 갈래?", day.replace(hour=18))]
    llm = FakeLLM()
    frame = start_frame(llm, request([*a, *b], budget=4000))
    before = chunks_part(frame, llm, "kept", [a]).to_messages()[0]["content"]
    after = chunks_part(frame, llm, "kept", [a, b]).to_messages()[0]["content"]
    assert after.startswith(before + "\n")
    assert after[len(before) + 1 :] == RECALL_HEADER + "On 2 March 2024:\n- User said: 산책 갈래?"


def test_by_rank_the_best_find_is_last_with_its_day() -> None:
    """`recall_order: rank`: the notes least relevant first, the best nearest the question; a
    day's line wherever the day changes from the note before."""
    chosen = [  # best first, as recall ranks them
        turn(7, "user", "We named her Mochi.", datetime(2024, 3, 2, 9)),
        turn(2, "assistant", "A kitten!!", datetime(2024, 3, 1, 9)),
        turn(3, "user", "Grandma visits Sunday.", datetime(2024, 3, 1, 10)),
    ]
    out = render_recalled(chosen, "s1", "Dad", "Pippa", order="rank")
    assert [m.id for m in out] == [3, 2, 7]
    assert out[0].content == RECALL_HEADER + "On 1 March 2024:\n- Dad said: Grandma visits Sunday."
    assert out[1].content == "- Pippa said: A kitten!!"  # the same day as the note before
    assert out[2].content == "On 2 March 2024:\n- Dad said: We named her Mochi."


def test_by_day_a_days_finds_read_as_said_and_the_best_finds_day_is_last() -> None:
    """`recall_order: day`: each day's finds together, in the order they were said (a
    question before its answer), one line per day; the day of the best find nearest the
    question, the other days by their best find."""
    chosen = [  # best first, as recall ranks them
        turn(8, "assistant", "Mochi!", datetime(2024, 3, 2, 9, 1)),
        turn(3, "user", "Grandma visits Sunday.", datetime(2024, 3, 1, 10)),
        turn(9, "user", "She sleeps all day.", datetime(2024, 3, 2, 11)),
        turn(7, "user", "What did we name her?", datetime(2024, 3, 2, 9)),
        turn(12, "user", "Rain again.", datetime(2024, 3, 5, 9)),
        turn(2, "assistant", "A kitten!!", datetime(2024, 3, 1, 9)),
    ]
    out = render_recalled(chosen, "s1", "Dad", "Pippa", order="day")
    assert [m.id for m in out] == [12, 2, 3, 7, 8, 9]
    assert out[0].content == RECALL_HEADER + "On 5 March 2024:\n- Dad said: Rain again."
    assert out[1].content == "On 1 March 2024:\n- Pippa said: A kitten!!"
    assert out[3].content == "On 2 March 2024:\n- Dad said: What did we name her?"
    assert sum("On " in m.content for m in out) == 3  # one line per day
