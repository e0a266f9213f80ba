"""The Korean planted-facts generator: deterministic, twins aligned, every question has evidence."""

from __future__ import annotations

from benchmarks.korean_facts import ASSISTANT, FACTS, USER, generate


def test_same_arguments_same_conversations() -> None:
    assert generate("ko", 3, seed=7) == generate("ko", 3, seed=7)
    assert generate("ko", 3, seed=7) != generate("ko", 3, seed=8)


def test_every_question_points_at_the_statement_of_its_fact() -> None:
    convs = generate("ko")
    assert sum(q.kind == "template" for c in convs for q in c.questions) >= 300
    for conv in convs:
        assert len(conv.messages) == 240
        assert [m.role for m in conv.messages[:2]] == [USER, ASSISTANT]
        for q in conv.questions:
            assert q.evidence and all(0 <= e < len(conv.messages) // 3 for e in q.evidence)
            assert all(conv.messages[e].role == USER for e in q.evidence)


def test_the_english_twin_has_the_same_structure() -> None:
    for ko, en in zip(generate("ko", 4), generate("en", 4), strict=True):
        assert [m.role for m in ko.messages] == [m.role for m in en.messages]
        assert [m.at for m in ko.messages] == [m.at for m in en.messages]
        assert [(q.evidence, q.fact, q.kind) for q in ko.questions] == [
            (q.evidence, q.fact, q.kind) for q in en.questions
        ]
        assert any("아빠" in m.text for m in ko.messages)
        assert not any("아빠" in m.text for m in en.messages)


def test_at_least_twenty_hand_written_paraphrases() -> None:
    assert sum(len(f.paraphrases) for f in FACTS) >= 20


def test_a_live_chat_asks_one_question_per_fact_in_turn() -> None:
    from benchmarks.korean_context import live_order

    questions = generate("ko", 1, 11)[0].questions
    order = live_order(questions)
    assert sorted(map(id, order)) == sorted(map(id, questions))  # each asked once
    facts = len({q.evidence for q in questions})
    first = [q.evidence for q in order[:facts]]
    assert len(set(first)) == facts  # every fact once before any is asked again
