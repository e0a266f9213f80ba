"""The persona's example dialogue yields to memory at a small budget (memory/persona.py), the
same way every turn, so the KV prefix holds."""

from __future__ import annotations

import asyncio

import pytest
from memory_fakes import FakeLLM, FakeRecaller, conversation, request

from memory import registry
from memory.base import MemoryDeps
from memory.persona import EXAMPLES_HEADER, fitting_examples, with_examples
from memory.types import Context, ContextOverflowError

PROMPT = "You are Pippa, the AI daughter of the person you are talking to."
LINES = [
    "아빠: 피파야, 뭐 하고 있었어?",
    "Pippa: 아빠 기다리고 있었지! 오늘 뭐 재밌는 일 있었어?",
    "아빠: 오늘 좀 피곤하네.",
    "Pippa: 에이, 우리 아빠 오늘 고생 많았네. 따뜻한 차 한 잔 마시고 푹 쉬어.",
]


def test_the_examples_follow_the_prompt_as_a_transcript() -> None:
    assert with_examples(PROMPT, LINES[:2]) == PROMPT + EXAMPLES_HEADER + "\n".join(LINES[:2])
    assert with_examples(PROMPT, []) == PROMPT


def test_whole_exchanges_yield_from_the_end() -> None:
    def count(text: str) -> int:
        return len(text)

    def fits(n: int) -> int:
        return count(with_examples(PROMPT, LINES[:n]))

    assert fitting_examples(PROMPT, LINES, fits(4), count) == 4
    assert fitting_examples(PROMPT, LINES, fits(4) - 1, count) == 2  # never half an exchange
    assert fitting_examples(PROMPT, LINES, fits(2) - 1, count) == 0
    assert fitting_examples(PROMPT, LINES[:3], fits(3) - 1, count) == 2  # a dangling line first
    assert fitting_examples(PROMPT, LINES, 0, count) == 0
    assert fitting_examples(PROMPT, [], 10_000, count) == 0


def assemble(budget: int, new: str = "what did I say about the dog?") -> Context:
    llm = FakeLLM()  # len(content) // 4 + 4 a message
    strategy = registry.create("hybrid", {}, MemoryDeps(llm=llm, recaller=FakeRecaller()))
    req = request(conversation(30), new=new, budget=budget, system=PROMPT)
    req.example_dialogue = LINES
    return asyncio.run(strategy.assemble(req))


def persona_text(ctx: Context) -> str:
    return ctx.parts[0].messages[0].content


def budget_for(n: int) -> int:
    """The smallest budget whose share (half) holds the overhead and n example lines."""
    llm = FakeLLM()
    persona = llm.count_message({"role": "system", "content": with_examples(PROMPT, LINES[:n])})
    return 2 * (llm.count_overhead() + persona)


def test_a_large_budget_shows_them_all() -> None:
    ctx = assemble(2_000)
    assert persona_text(ctx) == with_examples(PROMPT, LINES)
    assert not any("example" in n for n in ctx.notes)


def test_a_small_budget_shows_fewer_and_says_so() -> None:
    assert persona_text(assemble(budget_for(4))) == with_examples(PROMPT, LINES)
    ctx = assemble(budget_for(4) - 2)
    assert persona_text(ctx) == with_examples(PROMPT, LINES[:2])
    assert "2 of the persona's 4 example lines" in " ".join(ctx.notes)
    assert persona_text(assemble(budget_for(2) - 2)) == PROMPT


def test_what_is_shown_does_not_depend_on_the_message() -> None:
    """The KV cache keeps the prefix from turn to turn only if the persona part stays."""
    for budget in (budget_for(0), budget_for(2), budget_for(4), 2_000):
        texts = {persona_text(assemble(budget, new)) for new in ("hi", "x " * 30, "뭐 했어?")}
        assert len(texts) == 1, (budget, texts)


def test_a_long_message_goes_before_the_examples() -> None:
    budget = budget_for(4)
    assert persona_text(assemble(budget)) == with_examples(PROMPT, LINES)
    # a message that fits only without the examples
    long = "x" * 4 * (budget - budget_for(0) // 2 - 8)
    ctx = assemble(budget, long)
    assert persona_text(ctx) == PROMPT and ctx.parts[-1].messages[0].content == long
    with pytest.raises(ContextOverflowError):
        assemble(budget, long * 2)
