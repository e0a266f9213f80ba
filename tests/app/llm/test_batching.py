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

from app.llm.batching import (
    OFFSET_COST,
    PREFILL_SHARED,
    DecodeBatcher,
    prefill_share,
)
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


def passes(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """Record what each batched pass ran: a token (decode) or a list of ids (a prompt chunk)."""
    seen: list[list[Any]] = []
    original = BatchDecoder.step

    def step(self: BatchDecoder, toks: Any, caches: Any) -> Any:
        seen.append([t if isinstance(t, int) else (list(t), caches[i][0].offset)
                     for i, t in enumerate(toks)])  # fmt: skip
        return original(self, toks, caches)

    monkeypatch.setattr(BatchDecoder, "step", step)
    return seen


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


async def test_prompts_arriving_together_prefill_in_one_pass(
    engine: MLXEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four prompts at once share their prefill's weight reads, and each reply is the one it
    gets alone."""
    params = GenerationParams(max_tokens=8)
    alone = [await tokens(engine, ask(t), params) for t in TOPICS[:4]]
    seen = passes(monkeypatch)
    together = await asyncio.gather(*(tokens(engine, ask(t), params) for t in TOPICS[:4]))
    assert list(together) == alone
    chunks = [sum(not isinstance(t, int) for t in p) for p in seen]
    assert max(chunks) >= 2, chunks


async def test_a_long_prompt_beside_a_decoding_reply_prefills_within_the_round_budget(
    engine: MLXEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a reply decodes, a ~600-token prompt is cut into rounds of at most PREFILL_SHARED
    cost, so the decoding reply's next token never waits for the whole prompt."""
    long_prompt = [{"role": "user", "content": "Tell me about storms and rivers. " * 60}]
    short, long_params = GenerationParams(max_tokens=40), GenerationParams(max_tokens=6)
    alone = [
        await tokens(engine, ask("a kite"), short),
        await tokens(engine, long_prompt, long_params),
    ]
    seen = passes(monkeypatch)
    together = await asyncio.gather(
        tokens(engine, ask("a kite"), short), tokens(engine, long_prompt, long_params, delay=0.3)
    )
    assert list(together) == alone
    shared = [p for p in seen if any(isinstance(t, int) for t in p) and len(p) > 1]
    costs = [sum(chunk_cost(*t) for t in p if not isinstance(t, int)) for p in shared]
    assert len([c for c in costs if c > 0]) >= 2  # the long prompt took more than one round
    assert max(costs) <= PREFILL_SHARED


async def test_a_lone_prompt_prefills_in_plain_prefill_step_size_pieces(
    engine: MLXEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nobody decoding, a round takes `prefill_step_size` tokens whatever the offset: a
    lone turn's prompt is cut no smaller than an MLX prefill's chunks."""
    long_prompt = [{"role": "user", "content": "Tell me about storms and rivers. " * 100}]
    seen = passes(monkeypatch)
    await tokens(engine, long_prompt, GenerationParams(max_tokens=2))
    chunks = [len(t[0]) for p in seen for t in p if not isinstance(t, int)]
    assert len(chunks) >= 2 and chunks[0] == engine.prefill_step_size, chunks


def chunk_cost(ids: list[int], offset: int) -> float:
    return sum(1 + (offset + i) / OFFSET_COST for i in range(len(ids)))


def test_a_rounds_prompt_share_fits_its_budget_and_costs_more_deeper_in_the_cache() -> None:
    assert prefill_share(0, 0, PREFILL_SHARED) == (0, 0.0)
    n0, cost0 = prefill_share(1000, 0, PREFILL_SHARED)
    n2k, cost2k = prefill_share(1000, 2000, PREFILL_SHARED)
    assert 0 < n2k < n0 < PREFILL_SHARED and cost0 <= PREFILL_SHARED and cost2k <= PREFILL_SHARED
    assert prefill_share(n0, 0, PREFILL_SHARED) == (n0, cost0)  # all of a short prompt fits
    assert prefill_share(n0 + 1, 0, PREFILL_SHARED)[0] == n0  # one more token does not
    assert prefill_share(1000, 0, 2 * PREFILL_SHARED)[0] > n0
