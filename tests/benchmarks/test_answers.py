"""The answer benchmark's scoring (benchmarks/answer_scoring.py): LoCoMo's token F1, gold in
reply, role-prefix leaks, verbatim repeats and the seeded stratified subset (no model)."""

from __future__ import annotations

import pytest

from benchmarks.answer_scoring import (
    answer_f1,
    contains_answer,
    leak_pattern,
    leaks,
    loops,
    normalize,
    repeats,
    stratified,
    token_f1,
)


def test_normalize_drops_case_punctuation_and_articles() -> None:
    assert normalize("The Sunset, and a Horse!") == "sunset horse"


def test_token_f1_matches_the_paper() -> None:
    assert token_f1("She painted a sunset", "sunset") == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    assert token_f1("7 May 2023", "7 May 2023") == 1.0
    assert token_f1("nothing here", "Mochi") == 0.0
    assert token_f1("", "Mochi") == 0.0


def test_multi_hop_averages_the_gold_parts() -> None:
    # category 1: "Horse, sunset" is two parts; the reply names one of them exactly
    assert answer_f1("horse", "Horse, sunset", 1) == pytest.approx(0.5)
    assert answer_f1("a horse, a sunset", "Horse, sunset", 1) == pytest.approx(1.0)


def test_open_domain_keeps_the_part_before_the_semicolon() -> None:
    assert answer_f1("likely no", "Likely no; she wants to be a counselor", 3) == 1.0


def test_contains_is_word_aligned() -> None:
    assert contains_answer("Her cat is called Mochi.", "Mochi", 4)
    assert not contains_answer("Mochipan", "Mochi", 4)
    assert not contains_answer("anything", "", 4)


@pytest.mark.parametrize(
    ("reply", "leaked"),
    [
        ("Sure! user: what about", True),
        ("Fine.\nassistant: ok", True),
        ("아빠: 나 왔어", True),
        ("Caroline: I went there", True),
        ("I told the user about it", False),
        ("아빠, 보고 싶었어!", False),
    ],
)
def test_leaks(reply: str, leaked: bool) -> None:
    assert leaks(reply, leak_pattern(["아빠", "Caroline"])) is leaked


def test_repeats_count_consecutive_equal_replies() -> None:
    assert repeats(["Hi!", "hi", "Hello", "", ""]) == 1


def test_loops() -> None:
    assert loops("I'm so glad you're here. I'm so glad you're here.")
    assert loops("No, no, no, no, no, no, no")
    assert not loops("Mochi! She is all white with one grey ear. I love her.")


def test_stratified_is_seeded_and_even() -> None:
    items = list(range(20))
    strata = {1: list(range(0, 10)), 2: list(range(10, 16)), 3: list(range(16, 20))}
    a = stratified(items, strata, 9, seed=1)
    assert a == stratified(items, strata, 9, seed=1)
    assert a == sorted(a)
    assert [sum(1 for i in a if i in s) for s in strata.values()] == [3, 3, 3]
    assert len(stratified(items, strata, 100, seed=1)) == 20  # never more than there are


def test_tables_list_every_row_once_with_the_oracle_ratio() -> None:
    from benchmarks.answer_tables import Reply, locomo_table, planted_table

    def r(row: str, f1: float, named: bool = False) -> Reply:
        score = {"f1": f1, "category": 4, "contains": f1 > 0, "leak": False, "loops": False}
        return Reply(row, "q", "a reply", 10, {**score, "named": named})

    hybrid = r("hybrid", 0.4)
    hybrid.score["evidence"] = 0.5
    table = locomo_table([hybrid, r("oracle", 0.5)], ["hybrid", "oracle"], "oracle")
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| hybrid | 1 | 0.400 | 0.80 | 1.000 | 0.500 |")
    planted = planted_table({"English": [r("hybrid", 0, True)], "Korean": []}, ["hybrid"])
    assert planted.splitlines()[2] == "| hybrid | 1/1 | 0/0 | 0 | 0 | 0 |"
