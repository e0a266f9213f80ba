"""How a lore key matches: whole words for Latin keys, Korean nouns with their particles,
substrings for Han and kana, regex keys, case; on real Korean sentences."""

from __future__ import annotations

import pytest

from memory.lore.errors import LoreError
from memory.lore.keys import ScanIndex, compile_key
from memory.lore.korean import is_ending_chain, key_forms


def fires(key: str, text: str, case_sensitive: bool = False, whole_words: bool = True) -> bool:
    k = compile_key(key, case_sensitive, whole_words, False)
    assert k is not None
    return k.find(ScanIndex([text]), 1) == 0


@pytest.mark.parametrize(
    "text",
    [
        "어젯밤 용이 마을 위를 날아갔어.",
        "나는 용을 본 적이 없어.",
        "그 얘기는 용한테 직접 물어봐.",
        "용은 동굴에서 잠들어 있대.",
        "저건 진짜 용이야!",
        "용들에게는 이름이 있어.",
        "용, 거기 있니?",
        "The 용 was here",
    ],
)
def test_a_korean_noun_key_fires_with_its_particles(text: str) -> None:
    assert fires("용", text)


@pytest.mark.parametrize(
    "text",
    [
        "용기를 내서 말해 봐.",  # courage
        "이 컴퓨터를 사용했어.",  # used
        "제발 나를 용서해 줘.",  # forgive
        "공룡 박물관에 갔어.",  # dinosaur
        "용돈을 다 써버렸어.",  # pocket money
        "그 용사는 용감했다.",  # warrior, brave
    ],
)
def test_a_korean_noun_key_does_not_fire_inside_other_words(text: str) -> None:
    assert not fires("용", text)


def test_longer_korean_keys_and_phrases() -> None:
    assert fires("엠버", "엠버에게 편지를 썼어")
    assert fires("엠버", "엠버랑 같이 갔어")
    assert not fires("엠버", "셉템버엠버는 없어")  # not at a word start
    assert fires("붉은 용", "붉은 용이 나타났다")
    assert not fires("붉은 용", "붉은 용기가 필요해")
    assert fires("은빛 숲", "우리는 은빛 숲에서 만났어")


def test_noun_endings_are_chains_of_particles_not_verb_endings() -> None:
    assert is_ending_chain("한테서") and is_ending_chain("들에게는") and is_ending_chain("이야")
    assert not is_ending_chain("기") and not is_ending_chain("서") and not is_ending_chain("감")
    assert key_forms("용한테") == ("용한테", "용")
    assert key_forms("용기") == ("용기",)


def test_short_latin_keys_match_whole_words_only() -> None:
    assert not fires("AI", "I ain't going there.")
    assert not fires("AI", "Said the maid.")
    assert fires("AI", "The AI woke up.")
    assert fires("AI", "Ask the AI's opinion.")
    assert fires("dragon", "Three dragons flew by.")
    assert fires("dragon", "The dragon's hoard.")
    assert not fires("dragon", "Snapdragon flowers.")
    assert not fires("Ember", "In December it snowed.")
    assert fires("Mt. Doom", "They climbed mt doom at dawn.")
    assert fires("witch", "The witches met.")
    assert fires("Ember", "Netflix에서 Ember를 봤어")  # a Latin key before a Korean particle


def test_explicit_substring_matching_when_an_entry_turns_whole_words_off() -> None:
    assert fires("AI", "I ain't going", whole_words=False)


def test_han_and_kana_keys_match_as_substrings() -> None:
    assert fires("ドラゴン", "昨日ドラゴンが来た")  # Japanese has no spaces between words
    assert fires("龙", "我看见了一条龙在天上")
    assert fires("東京", "東京タワーに行った")


def test_case_sensitivity() -> None:
    assert fires("Rose", "a rose grew")
    assert not fires("Rose", "a rose grew", case_sensitive=True)
    assert fires("Rose", "Rose grew", case_sensitive=True)


def test_regex_keys_in_the_sillytavern_form_and_v3_use_regex() -> None:
    assert fires("/dra+gon/i", "DRAAAGON!")
    assert not fires("/dra+gon/", "DRAAAGON!")  # no i flag: case-sensitive, as in JavaScript
    k = compile_key(r"\bfire ?drake\b", False, True, True)
    assert k is not None and k.kind == "regex" and k.find(ScanIndex(["A Firedrake!"]), 1) == 0


def test_a_bad_regex_is_an_error_naming_the_key() -> None:
    with pytest.raises(LoreError) as exc:
        compile_key("/dra(gon/i", False, True, False, "entries.3.keys.0")
    assert exc.value.field == "entries.3.keys.0" and "bad regex" in str(exc.value)
    with pytest.raises(LoreError, match="unknown regex flag"):
        compile_key("/dragon/q", False, True, False)


def test_the_newest_message_holding_a_key_is_found_within_the_depth() -> None:
    k = compile_key("Ember", False, True, False)
    assert k is not None
    index = ScanIndex(["hello", "Ember again", "Ember first"])
    assert k.find(index, 3) == 1
    assert k.find(index, 1) is None


def test_a_catastrophic_regex_neither_hangs_nor_fires() -> None:
    # with `re` this pattern backtracks for minutes on 30 x's; `regex` defuses it, and a
    # search that still runs long stops at its timeout and counts as no match
    assert not fires("/(x+x+)+y/", "x" * 30)
    assert not fires("/(a|aa)+$/", "a" * 40 + "!")


def test_javascript_named_groups_are_read() -> None:
    assert fires("/(?<beast>dra+gon)/i", "A DRAAGON!")
