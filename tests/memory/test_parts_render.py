"""How recalled turns read to the model (memory/strategies/_parts.py render_recalled): dated
third-person notes under a header that says they are memory, speakers named (issue 12)."""

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
    assert out[0].content == RECALL_HEADER + "- On 2 March 2024 아빠 said: We named her Mochi."
    assert out[1].content == "- On 2 March 2024 Pippa said: A kitten!! Send me pictures."
    assert "user:" not in "\n".join(m.content for m in out)


def test_a_speaker_label_in_the_text_names_the_speaker() -> None:
    chosen = [
        turn(1, "user", "Caroline: I went to a support group.", datetime(2023, 5, 8, 13, 56)),
        turn(2, "assistant", "Melanie: That's great!", datetime(2023, 5, 8, 13, 57)),
        turn(3, "user", "아빠: 오늘 좀 피곤하네.", datetime(2023, 5, 9)),
        turn(4, "user", "note: lowercase is not a name", datetime(2023, 5, 9)),
    ]
    lines = [m.content for m in render_recalled(chosen, "s1", "아빠", "Pippa")]
    assert lines[0].endswith("- On 8 May 2023 Caroline said: I went to a support group.")
    assert lines[1] == "- On 8 May 2023 Melanie said: That's great!"
    assert lines[2] == "- On 9 May 2023 아빠 said: 오늘 좀 피곤하네."
    assert lines[3] == "- On 9 May 2023 아빠 said: note: lowercase is not a name"


def test_earlier_sessions_come_first_under_their_own_header() -> None:
    chosen = [
        turn(9, "user", "today's news", datetime(2024, 3, 14)),
        turn(2, "user", "old news", datetime(2024, 3, 2), session="s0"),
    ]
    out = render_recalled(chosen, "s1", "Dad", "Pippa")
    assert out[0].content == SCOPE_HEADER + "- On 2 March 2024 Dad said: old news"
    assert out[0].session_id == "s0" and out[1].session_id is None
    assert out[1].content.startswith(RECALL_HEADER + "- On 14 March 2024 Dad said:")
