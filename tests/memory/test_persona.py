"""The persona's example dialogue is shown whole, and yields only to a message that would not
fit beside it (memory/persona.py)."""

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
LLM = FakeLLM()  # len(content) // 4 + 4 a message, overhead 3


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


def assemble(budget: int, new: str) -> Context:
    strategy = registry.create("hybrid", {}, MemoryDeps(llm=LLM, recaller=FakeRecaller()))
    req = request(conversation(30), new=new, budget=budget, system=PROMPT)
    req.example_dialogue = LINES
    return asyncio.run(strategy.assemble(req))


def persona_text(ctx: Context) -> str:
    return ctx.parts[0].messages[0].content


def persona_tokens(n: int) -> int:
    return LLM.count_message({"role": "system", "content": with_examples(PROMPT, LINES[:n])})


def message_of(tokens: int) -> str:
    return "x" * 4 * (tokens - 4)


def test_a_small_budget_still_shows_them_all() -> None:
    """They are worth their tokens: a reply names a planted fact more often with them."""
    budget = LLM.count_overhead() + persona_tokens(4) + 20
    ctx = assemble(budget, "what did I say about the dog?")
    assert persona_text(ctx) == with_examples(PROMPT, LINES)
    assert not any("example" in n for n in ctx.notes)


def test_a_long_message_goes_before_the_examples() -> None:
    budget = 400
    room = budget - LLM.count_overhead()  # for persona and message (no pinned facts here)
    fits_two = message_of(room - persona_tokens(2))
    ctx = assemble(budget, fits_two)
    assert persona_text(ctx) == with_examples(PROMPT, LINES[:2])
    assert "2 of the persona's 4 example lines shown" in " ".join(ctx.notes)
    ctx = assemble(budget, message_of(room - persona_tokens(0)))
    assert persona_text(ctx) == PROMPT and ctx.parts[-1].tokens == room - persona_tokens(0)
    with pytest.raises(ContextOverflowError):
        assemble(budget, message_of(room - persona_tokens(0) + 1))
