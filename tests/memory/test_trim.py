"""A recalled turn cut to the sentences the message asks about (memory/trim.py)."""

from __future__ import annotations

from memory.bm25 import terms
from memory.trim import best_sentences

TURN = (
    "Hey Mel! Good to see you! I went to a LGBTQ support group yesterday and it was so "
    "powerful. How are you?"
)


def test_the_sentence_sharing_most_words_stays_with_elisions_where_others_went() -> None:
    query = set(terms("When did Caroline go to the LGBTQ support group?"))
    assert best_sentences(TURN, query, 1) == (
        "… I went to a LGBTQ support group yesterday and it was so powerful. …"
    )


def test_kept_sentences_keep_their_order_and_adjacent_ones_need_no_elision() -> None:
    text = "My cat is Mochi. She is grey. I like tea. Mochi sleeps all day."
    query = set(terms("what does Mochi the cat do all day"))
    assert best_sentences(text, query, 2) == "My cat is Mochi. … Mochi sleeps all day."
    assert best_sentences(text, set(terms("Mochi grey cat")), 2) == (
        "My cat is Mochi. She is grey. …"
    )


def test_korean_particles_do_not_hide_the_shared_word() -> None:
    text = "아빠 나 오늘 회사에서 힘들었어. 근데 우리 고양이 이름은 모찌야. 귀엽지?"
    assert best_sentences(text, set(terms("고양이 이름이 뭐였지?")), 1) == (
        "… 근데 우리 고양이 이름은 모찌야. …"
    )


def test_nothing_to_cut_by_leaves_the_turn_whole() -> None:
    query = set(terms("LGBTQ support group"))
    assert best_sentences("Short one. Two.", query, 2) is None  # not longer than n
    assert best_sentences(TURN, set(terms("violin lessons")), 1) is None  # no shared word
    assert best_sentences(TURN, set(), 1) is None
    assert best_sentences(TURN, query, 0) is None
