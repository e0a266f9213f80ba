"""A reply is the persona's: an opening speaker label is dropped, a label later on ends it
(issue 12). Fed in every split, so that a label straddling chunks is caught as a whole one is."""

from __future__ import annotations

import pytest

from app.llm.stops import ReplyCut, cut, label_stops

SPEAKERS = ("Caroline", "Melanie", "아빠")
STOPS = ("\nuser:", *label_stops(SPEAKERS))


def streamed(reply: str, size: int) -> str:
    cutter = ReplyCut(STOPS, SPEAKERS)
    out = []
    for i in range(0, len(reply), size):
        text, hit = cutter.feed(reply[i : i + size])
        out.append(text)
        if hit:
            return "".join(out)
    return "".join(out) + cutter.flush()


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("Caroline: I'd love to go!", "I'd love to go!"),
        ("  Melanie:  Sure, at 5.", "Sure, at 5."),
        ("아빠: 응 알았어", "응 알았어"),
        ("Carol said she would come.", "Carol said she would come."),  # a prefix, not a label
        ("Caroline is away. Melanie: me too", "Caroline is away."),
        ("Sure.\nCaroline: and then", "Sure."),
        ("Caroline: Sure.\nMelanie: no", "Sure."),
        ("이번 여름엔 바다. Melanie said: \"I'm", "이번 여름엔 바다."),
        # the recalled notes' own form (issue 11): dropped when opening, an end later on
        ("- 아빠 said: 응 알았어", "응 알았어"),
        ("Melanie said: Sure, at 5.", "Sure, at 5."),
        ("Melanie said she would come.", "Melanie said she would come."),
        ("고마워!\n- 아빠 said: 그래", "고마워!"),
        ("이번 여름으로 나국은 함っ！\nMelanie said: \"I'm", "이번 여름으로 나국은 함っ！"),
        ("좋아.\nOn 3 March 2024:\n- Caroline said: I", "좋아.\nOn 3 March 2024:"),
        ("Caro", "Caro"),  # held to the end, then given back
        ("", ""),
    ],
)
def test_opening_labels_are_dropped_and_later_ones_end_the_reply(reply: str, kept: str) -> None:
    assert cut(reply, STOPS, SPEAKERS) == kept
    for size in (1, 2, 3, 7):
        assert streamed(reply, size) == kept, size


def test_without_speakers_only_the_stops_cut() -> None:
    assert cut("Caroline: hi\nuser: yo", ("\nuser:",)) == "Caroline: hi"
    assert label_stops(()) == ()
