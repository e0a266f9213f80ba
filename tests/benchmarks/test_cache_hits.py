"""The cache-hit measure: exact on hand-made prompts, and it ranks strategies as designed."""

from __future__ import annotations

from benchmarks.cache_hits import LexicalRecaller, prefix_stats, simulate
from memory.types import Context, ContextMessage, ContextPart


def ctx(*contents: str) -> Context:
    messages = [ContextMessage(role="user", content=c) for c in contents]
    return Context(budget=100, total_tokens=len(contents), parts=[
        ContextPart(kind="recent", tokens=len(contents), messages=messages)
    ])  # fmt: skip


class FakeLLM:
    context_window = 8192

    def count_message(self, m):  # type: ignore[no-untyped-def]
        return len(m["content"]) // 4 + 4

    def count_overhead(self) -> int:
        return 3

    def count(self, ms):  # type: ignore[no-untyped-def]
        return 3 + sum(self.count_message(m) for m in ms)

    async def complete(self, messages, params):  # type: ignore[no-untyped-def]
        raise AssertionError("the benchmark strategies use the extractive summarizer")


def test_prefix_stats_on_message_units_and_on_tokens() -> None:
    contexts = [ctx("a"), ctx("a", "b", "c"), ctx("x", "b", "c", "d"), ctx("x", "b", "c", "d")]
    s = prefix_stats(contexts)
    assert s.turns == 4 and s.hit_rate == 2 / 3
    assert s.reused == (1 + 0 + 4) / (3 + 4 + 4)

    def encode(messages):  # type: ignore[no-untyped-def]
        return [ord(ch) for m in messages for ch in m["content"]]

    assert prefix_stats(contexts, encode).hit_rate == 2 / 3


async def test_chunked_buffers_reuse_the_prefix_and_recall_does_not() -> None:
    llm = FakeLLM()
    rates = {}
    for name, params in [
        ("token_buffer", {"max_tokens": 600}),
        ("window", {"k": 6, "evict_to": 1.0}),
        ("vector", {}),
    ]:
        contexts = await simulate(
            name, params, llm, turns=40, budget=2048, recaller=LexicalRecaller()
        )
        assert len(contexts) == 40
        assert all(c.total_tokens <= 2048 for c in contexts)
        rates[name] = prefix_stats(contexts).hit_rate
    assert rates["token_buffer"] > 0.6
    assert rates["window"] < 0.3  # a strict sliding window breaks the prefix every turn
    assert rates["vector"] < rates["token_buffer"]
