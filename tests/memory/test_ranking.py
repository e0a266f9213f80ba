"""The pure ranking helpers of memory/ranking.py that memory/recall.py's tests do not cover."""

from __future__ import annotations

import pytest

from memory.ranking import forget_text_keys, question_share


@pytest.mark.parametrize(
    ("text", "share"),
    [
        ("Okay okay, got it!", 0.0),
        ("", 0.0),
        ("😊", 0.0),
        ("What breed is it?", 1.0),
        ("친구 생일 선물 뭐 사지? 😅", 1.0),  # emoji after the mark
        ("뭐해?ㅋㅋ", 1.0),  # laughter after the mark
        ("주말에 뭐 할까?? ㅋㅋ", 1.0),  # "ㅋㅋ" after it, a sentence of laughter, ends nothing
        ("そうですか？", 1.0),  # the full-width mark
        ("I went camping! Have you been?", 11 / 23),
        ("Have you been? I went camping!", 0.0),  # it ends on what it says
        ("You know what I could eat every day? Grandma's kimchi stew.", 0.0),
        ("My cat is Mochi.\nWhat about yours?", 14 / 26),
    ],
)
def test_question_share_of_turns_that_end_asking(text: str, share: float) -> None:
    assert question_share(text) == pytest.approx(share)


def test_forgetting_drops_the_cached_shares_with_their_texts() -> None:
    question_share("Where did my sister move?")
    assert question_share.cache_info().currsize > 0
    forget_text_keys()  # what HybridRecaller.forget calls: no forgotten text stays in a cache
    assert question_share.cache_info().currsize == 0
