"""BM25 and its tokenizer: pure, no model."""

from __future__ import annotations

import pytest

from memory.bm25 import BM25, CorpusStats, query_weights, terms


def test_terms_drop_stopwords_and_stem() -> None:
    assert terms("She was painting sunsets with the kids' paints!") == [
        "paint",
        "sunset",
        "kid",
        "paint",
    ]


def test_a_stop_word_with_its_verb_attached_is_no_term() -> None:
    # "what's" had been "what": every question asked with it matched every other one
    assert terms("What's my all-time favourite dish? Where's Hana? I'm sure you're right") == [
        "time",
        "favourite",
        "dish",
        "hana",
        "sure",
        "right",
    ]
    assert terms("Can't stop, don't worry, Mom's car") == ["stop", "worry", "mom", "car"]


def test_matched_is_the_share_of_the_query_weight_a_doc_holds() -> None:
    bm25 = BM25()
    for i, text in enumerate(["time flies", "kimchi stew every day", "what time is dinner"]):
        bm25.add(i, text)
    query = "all-time favourite stew"  # favourite: in no doc, so it weighs most
    weights = query_weights(bm25.terms, query, CorpusStats.of([bm25], query))
    assert set(weights) == {"time", "favourite", "stew"}
    assert weights["favourite"] > weights["stew"] > weights["time"]  # df 0 < 1 < 2
    total = sum(weights.values())
    assert bm25.matched(0, weights) == pytest.approx(weights["time"] / total)
    assert bm25.matched(1, weights) == pytest.approx(weights["stew"] / total)
    assert bm25.matched(7, weights) == 0.0  # not in the index


def test_bm25_incremental_updates_equal_a_rebuild() -> None:
    docs = {i: f"doc {i} about {'cats' if i % 3 else 'dogs'} and topic{i % 4}" for i in range(40)}
    inc = BM25()
    for i, t in docs.items():
        inc.add(i, t)
    inc.add(5, "now about parrots")  # an edit
    for i in range(30, 40):
        inc.remove(i)
    docs[5] = "now about parrots"
    fresh = BM25()
    for i in range(30):
        fresh.add(i, docs[i])
    assert inc.scores("cats topic1 parrots") == pytest.approx(fresh.scores("cats topic1 parrots"))
    assert inc.top("parrots", 3) == [5]
    assert inc.top("dogs", 50, allowed={0, 3, 4}) == [0, 3]


# Captured from terms() before Korean/CJK support was added: Latin text must tokenize the same
# (since then, on purpose, a stop word with its verb attached is no term: i'm, it's, he's).
ENGLISH_BEFORE = {
    "Caroline went to the LGBTQ support group on 7 May 2023.": [
        "caroline", "went", "lgbtq", "support", "group", "7", "may", "2023",
    ],
    "I'm adopting a dog named Max; he's 3 years old.": [
        "adopt", "dog", "named", "max", "3", "year", "old",
    ],
    "Melanie: Wow, what did you think of \"Charlotte's Web\"? I loved it!!": [
        "melanie", "charlotte", "web", "loved",
    ],
    "[8 May 2023] Caroline: I researched adoption agencies — it's been a dream.": [
        "8", "may", "2023", "caroline", "research", "adoption", "agency", "dream",
    ],
    "café naïve résumé 100% e-mail x y 2 A": ["caf", "na", "ve", "sum", "100", "mail", "2"],
}  # fmt: skip


@pytest.mark.parametrize("text", ENGLISH_BEFORE)
def test_english_terms_are_unchanged(text: str) -> None:
    assert terms(text) == ENGLISH_BEFORE[text]


def shared(*words: str) -> set[str]:
    """The terms every one of `words` produces."""
    return set.intersection(*(set(terms(w)) for w in words))


def test_a_korean_noun_matches_itself_under_any_particle() -> None:
    assert "아빠" in shared("아빠", "아빠가", "아빠는", "아빠한테", "아빠랑", "아빠도")
    assert "이름" in shared("이름은", "이름이", "이름")
    assert terms("개가") == ["개가", "개"]  # a one-syllable noun stays findable
    assert "개" in shared("개가", "개는", "개")


def test_verb_forms_and_honorific_endings_share_the_stem() -> None:
    assert "먹" in shared("먹었어", "먹어", "먹었어요", "먹었다")
    assert "공부" in shared("공부했어요", "공부해", "공부했어", "공부")
    assert "가" in shared("가셨어요", "가")


def test_konglish_and_mixed_korean_english_words() -> None:
    assert terms("카톡") == ["카톡", "카톡"]  # the bigram and the whole word
    assert "카톡" in shared("카톡으로", "카톡")
    assert {"넷플", "플릭", "릭스", "넷플릭스"} <= shared("넷플릭스에서", "넷플릭스로", "넷플릭스")
    assert terms("Netflix에서 iPhone이랑") == ["netflix", "iphone"]  # bare particles dropped


def test_japanese_and_chinese_become_bigrams() -> None:
    assert terms("東京に行きました") == ["東京", "京に", "に行", "行き", "きま", "まし", "した"]
    assert terms("我喜欢吃饺子") == ["我喜", "喜欢", "欢吃", "吃饺", "饺子"]
    assert terms("猫") == ["猫"]


def test_laughter_and_emoji_are_no_terms() -> None:
    assert terms("ㅋㅋㅋㅋ ㅠㅠ 😂 ❤️") == []
    assert terms("ㅋㅋ진짜") == ["진짜", "진짜"]


def test_korean_question_words_are_no_terms() -> None:
    assert terms("어디로 가?") == ["가"]
    assert terms("뭐였지? 뭐더라 누가 언제 왜") == []
    assert terms("이번 여름에 어디 가지?") == terms("이번 여름에 가지?")
    assert "어디" not in terms("어디서든")  # not as a bigram inside a longer run either


def test_a_question_word_does_not_outrank_the_answer() -> None:
    docs = ["아빠 여동생이 이번에 부산으로 이사 갔어", "엄마랑 6월에 제주도 여행 가기로 했어"]
    docs.append("노란 차! 아빠 어디 가든 다 보이겠다")
    bm25 = BM25()
    for i, d in enumerate(docs):
        bm25.add(i, d)
    assert bm25.top("여름에 어디로 여행 가지?", 1) == [1]


def test_bm25_finds_korean_facts_under_other_particles() -> None:
    docs = [
        "우리 집 강아지 이름은 초코야 ㅋㅋ",
        "옆집 강아지가 밤새 짖었어",
        "오늘 회사에서 힘들었어",
        "나 땅콩 알레르기 있어서 땅콩은 못 먹어",
        "요즘 넷플릭스에서 무빙 정주행 중",
    ]
    bm25 = BM25()
    for i, d in enumerate(docs):
        bm25.add(i, d)
    assert bm25.top("강아지 이름이 뭐였지?", 1) == [0]
    assert bm25.top("내가 땅콩을 먹으면 안 되지?", 1) == [3]
    assert bm25.top("넷플릭스로 뭐 봤더라", 1) == [4]
    assert bm25.top("회사는 어땠어?", 1) == [2]


def test_bm25_takes_another_tokenizer() -> None:
    bm25 = BM25(tokenize=str.split)
    bm25.add(1, "a b")
    assert bm25.top("a", 5) == [1]  # "a" is a stop word for terms(), not for str.split
