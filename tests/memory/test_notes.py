"""What a reply's memory bias lifts (memory/notes.py): the words recalled notes quote, read
back from the block recall renders, with the frame (headers, day lines, "- X said: ") and every
other system text on the other side (issue 12)."""

from __future__ import annotations

from datetime import datetime

from memory.notes import split_notes
from memory.strategies._parts import RECALL_HEADER, SCOPE_HEADER, render_recalled
from memory.types import ContextPart, StoredMessage


def turn(mid: int, role: str, content: str, at: datetime, session: str = "s1") -> StoredMessage:
    return StoredMessage(
        id=mid, role=role, content=content, tokens=5, created_at=at, session_id=session
    )  # type: ignore[arg-type]


def block(chosen: list[StoredMessage]) -> str:
    """The one system message the engine sees of the recalled part."""
    msgs = render_recalled(chosen, "s1", user_name="아빠", assistant_name="Pippa")
    return ContextPart(kind="recalled", tokens=0, messages=msgs).to_messages()[0]["content"]


def test_the_quoted_words_apart_from_the_frame_and_the_persona() -> None:
    text = block(
        [
            turn(1, "user", "We named her Mochi.", datetime(2024, 3, 2, 9, 0)),
            turn(2, "assistant", "A kitten!! 이름 예쁘다", datetime(2024, 3, 2, 9, 1)),
            turn(3, "user", "The doctor said no shellfish.", datetime(2024, 3, 9)),
        ]
    )
    persona = "You are Pippa, 아빠's AI daughter."
    notes, rest = split_notes([persona, text])
    assert notes == (
        "2 March 2024",  # a date answers "when": the memory's own
        "We named her Mochi.",
        "A kitten!! 이름 예쁘다",
        "9 March 2024",
        "The doctor said no shellfish.",
    )
    assert rest == (
        persona,
        RECALL_HEADER.rstrip("\n"),
        "On :",
        "- 아빠 said: ",
        "- Pippa said: ",
        "On :",
        "- 아빠 said: ",
    )


def test_both_headers_in_one_block_and_a_note_over_two_lines() -> None:
    text = block(
        [
            turn(1, "user", "old talk", datetime(2024, 1, 5), session="s0"),
            turn(2, "user", "first line\nsecond line", datetime(2024, 3, 2)),
        ]
    )
    assert text.startswith(SCOPE_HEADER)
    notes, rest = split_notes([text])
    assert notes == ("5 January 2024", "old talk", "2 March 2024", "first line", "second line")
    assert RECALL_HEADER.rstrip("\n") in rest and SCOPE_HEADER.rstrip("\n") in rest


def test_text_without_notes_is_all_rest() -> None:
    # a pinned "- I said: ..." is not a note: notes sit under a day's line
    texts = [
        "Facts to keep in mind:\n- I said: no sugar",
        "Summary of the conversation so far:\nhi",
    ]
    assert split_notes(texts) == ((), tuple(texts))
    assert split_notes([]) == ((), ())


def test_only_the_last_block_nearest_the_question_is_lifted() -> None:
    """Kept turns come first, this message's own finds last: only those are lifted, and the
    kept turns' words are not held against them either."""
    kept = block([turn(1, "user", "We went camping at the lake.", datetime(2024, 2, 1))])
    found = block([turn(9, "user", "We named her Mochi.", datetime(2024, 3, 2))])
    notes, rest = split_notes([kept, found])
    assert notes == ("2 March 2024", "We named her Mochi.")
    assert "We went camping at the lake." not in rest and "1 February 2024" not in rest
