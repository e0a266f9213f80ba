"""Continuous batching on the real engine: replies decoding together give exactly the tokens
each gives alone, whatever joins or leaves the batch, and one reply's end, cancellation or
failure leaves the others' intact."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from typing import Any

import pytest

from app.llm.batching import DecodeBatcher
from app.llm.cpu_batch import BatchDecoder
from app.llm.mlx_engine import MLXEngine
from app.llm.types import EngineBusyError, GenerationParams

TOPICS = ["a cat", "the sea", "a robot", "winter", "a dragon", "coffee", "Seoul", "a violin"]


def ask(topic: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Tell me a short story about {topic}."}]


async def tokens(
    engine: MLXEngine,
    messages: list[dict[str, str]],
    params: GenerationParams,
    delay: float = 0.0,
    key: str | None = None,
) -> list[int]:
    await asyncio.sleep(delay)
    out: list[int] = []
    async for chunk in engine.stream(messages, params, cache_key=key):
        out.extend(chunk.token_ids)
    return out


def batch_sizes(engine: MLXEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many sequences each batched step ran (proves the batch really formed)."""
    sizes: list[int] = []
    original = BatchDecoder.step

    def step(self: BatchDecoder, toks: Any, caches: Any) -> Any:
        sizes.append(len(toks))
        return original(self, toks, caches)

    monkeypatch.setattr(BatchDecoder, "step", step)
    return sizes


async def test_batched_greedy_tokens_equal_single_stream_ones_over_random_joins_and_leaves(
    engine: MLXEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(14)
    plan = [(t, rng.randint(4, 40), rng.uniform(0, 0.6)) for t in TOPICS]  # length, arrival
    alone = [await tokens(engine, ask(t), GenerationParams(max_tokens=n)) for t, n, _ in plan]
    sizes = batch_sizes(engine, monkeypatch)
    together = await asyncio.gather(
        *(tokens(engine, ask(t), GenerationParams(max_tokens=n), d) for t, n, d in plan)
    )
    assert together == alone
    assert max(sizes) >= 3 and len(set(sizes)) > 1  # sequences joined and left the batch


async def test_a_cached_prefix_and_a_cold_prompt_decode_together(engine: MLXEngine) -> None:
    key = f"batch-{uuid.uuid4().hex}"
    params = GenerationParams(max_tokens=12)
    await tokens(engine, ask("a lighthouse"), params, key=key)  # the KV prefix is now cached
    follow = [*ask("a lighthouse"), {"role": "assistant", "content": "Once"}, *ask("a bell")]
    alone = [await tokens(engine, follow, params), await tokens(engine, ask("rain"), params)]
    together = await asyncio.gather(
        tokens(engine, follow, params, key=key), tokens(engine, ask("rain"), params)
    )
    assert list(together) == alone


async def test_the_cache_handed_back_after_a_batched_turn_gives_the_same_next_turn(
    engine: MLXEngine,
) -> None:
    params = GenerationParams(max_tokens=10)

    async def two_turns(company: bool) -> list[int]:
        key = f"turns-{uuid.uuid4().hex}"
        runs = [tokens(engine, ask("a kite"), params, key=key)]
        runs += [tokens(engine, ask(t), params) for t in TOPICS[:3]] if company else []
        reply = engine.tokenizer.decode((await asyncio.gather(*runs))[0])
        follow = [*ask("a kite"), {"role": "assistant", "content": reply}, *ask("its colour")]
        return await tokens(engine, follow, params, key=key)

    assert await two_turns(company=True) == await two_turns(company=False)


async def test_seeded_sampling_repeats_inside_a_batch(engine: MLXEngine) -> None:
    params = GenerationParams(max_tokens=16, temperature=0.9, top_p=0.95, seed=7)
    alone = await tokens(engine, ask("a fox"), params)
    others = GenerationParams(max_tokens=16, temperature=0.9, seed=99)
    together = await asyncio.gather(
        tokens(engine, ask("a fox"), params), *(tokens(engine, ask(t), others) for t in TOPICS[:3])
    )
    assert together[0] == alone


async def test_cancelling_one_reply_mid_batch_leaves_the_others_intact(
    engine: MLXEngine,
) -> None:
    params = GenerationParams(max_tokens=24)
    alone = [await tokens(engine, ask(t), params) for t in TOPICS[:3]]

    async def cancelled() -> None:
        n = 0
        async with contextlib.aclosing(engine.stream(ask("a storm"), params)) as chunks:
            async for _ in chunks:
                n += 1
                if n == 5:
                    return  # leaves the batch mid-reply

    together = await asyncio.gather(
        cancelled(), *(tokens(engine, ask(t), params) for t in TOPICS[:3])
    )
    assert list(together[1:]) == alone


async def test_a_failing_sequence_does_not_poison_the_batch(
    engine: MLXEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched step fails after advancing every cache: the offsets go back and each
    sequence steps alone; the one whose own step fails gets the error, the others continue
    with exactly their single-stream tokens."""
    params = GenerationParams(max_tokens=12)
    alone = [await tokens(engine, ask(t), params) for t in TOPICS[:2]]
    long_prompt = [{"role": "user", "content": "Tell me about storms. " * 40}]
    real_step, real_call = BatchDecoder.step, type(engine.model).__call__
    batched: list[int] = []

    def step(self: BatchDecoder, toks: Any, caches: Any) -> Any:
        batched.append(len(toks))
        real_step(self, toks, caches)
        raise RuntimeError("batched step failed")

    def call(self: Any, inputs: Any, cache: Any = None, **kw: Any) -> Any:
        if inputs.shape[1] == 1 and cache is not None and cache[0].offset > 200:
            raise RuntimeError("the long reply's own step failed")  # only that sequence
        return real_call(self, inputs, cache=cache, **kw)

    monkeypatch.setattr(BatchDecoder, "step", step)
    monkeypatch.setattr(type(engine.model), "__call__", call)
    results = await asyncio.gather(
        tokens(engine, long_prompt, params),
        *(tokens(engine, ask(t), params) for t in TOPICS[:2]),
        return_exceptions=True,
    )
    assert batched, "the batch never formed"
    assert isinstance(results[0], RuntimeError)
    assert list(results[1:]) == alone


def test_a_sequence_on_a_cache_the_batch_cannot_hold_steps_alone(engine: MLXEngine) -> None:
    from mlx_lm.models.cache import make_prompt_cache

    def run() -> list[Any]:
        batcher = DecodeBatcher(engine.model)  # type: ignore[arg-type]
        caches = [make_prompt_cache(engine.model) for _ in range(3)]
        for c in caches:
            engine.model(__import__("mlx.core").core.array([[5, 6, 7]]), cache=c)
        caches[2] = [*caches[2][:-1], object()]  # not a KVCache: cannot be batched
        return batcher.run_steps([(8, c) for c in caches])

    results = engine.worker.call(run)
    assert results[0].shape == results[1].shape == (1, engine.model.args.vocab_size)
    assert isinstance(results[2], Exception)


async def test_replies_beyond_the_batch_queue_and_beyond_the_queue_get_engine_busy(
    engine: MLXEngine,
) -> None:
    worker, limits = engine.worker, (engine.worker.max_active, engine.max_queued)
    worker.max_active = 1
    try:
        first = asyncio.create_task(
            tokens(engine, ask("a long road"), GenerationParams(max_tokens=64))
        )
        queued = asyncio.create_task(tokens(engine, ask("a queue"), GenerationParams(max_tokens=4)))
        for _ in range(500):  # the second waits for the first's place in the batch
            if worker.waiting == 1 or first.done():
                break
            await asyncio.sleep(0.01)
        assert worker.waiting == 1 and not first.done()
        engine.max_queued = 1  # the queue is now full
        with pytest.raises(EngineBusyError, match="MEMENTO_MAX_QUEUED_REPLIES"):
            await tokens(engine, ask("one too many"), GenerationParams(max_tokens=2))
        assert await first and await queued  # both still served
    finally:
        worker.max_active, engine.max_queued = limits
