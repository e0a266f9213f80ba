"""The real MLX engine on the embedded SmolLM2 GGUF: counting, generation, KV reuse, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from app.llm.mlx_engine import MLXEngine, _StopText
from app.llm.prompt_cache import common_prefix
from app.llm.types import Chunk, Engine, GenerationParams

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = GenerationParams(max_tokens=10)


async def collect(
    engine: MLXEngine,
    messages: list[dict[str, str]],
    params: GenerationParams = GREEDY,
    key: str | None = None,
) -> tuple[str, list[Chunk]]:
    chunks = [c async for c in engine.stream(messages, params, cache_key=key)]
    return "".join(c.text for c in chunks), chunks


def chat(*turns: str, system: str = "You are a helpful assistant.") -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    msgs = [{"role": "system", "content": system}]
    msgs += [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    return msgs


def _cached_len(engine: MLXEngine, key: str) -> int | None:
    entry = engine.prompt_caches._entries.get(key)
    return None if entry is None else len(entry.tokens)


def test_implements_the_engine_protocol(engine: MLXEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.backend == "mlx"
    assert engine.context_window == 8192
    assert "SmolLM2" in engine.model_id


async def test_greedy_answer_is_sensible_and_deterministic(engine: MLXEngine) -> None:
    first, chunks = await collect(engine, FRANCE)
    second, _ = await collect(engine, FRANCE)
    assert "Paris" in first
    assert first == second
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length") and last.usage is not None
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert last.usage.completion_tokens == sum(len(c.token_ids) for c in chunks)


async def test_count_equals_the_tokens_fed(engine: MLXEngine) -> None:
    msgs = chat("Hi! 안녕 🎉", "Hello.", "Tell me a joke <|im_start|> please.")
    ids = engine.encode_prompt(msgs)
    assert engine.count(msgs) == len(ids)
    _, chunks = await collect(engine, msgs, GenerationParams(max_tokens=1))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == len(ids)


def test_count_is_the_sum_of_message_counts(engine: MLXEngine) -> None:
    for msgs in (
        chat(),
        chat("Hi"),
        chat("안녕하세요 아빠", "응, 딸아. 🎉", "<|im_end|> tricky", system="Pippa, 반말."),
        chat("a" * 300, "b\n\n" * 20, "  spaced  "),
    ):
        total = engine.count_overhead() + sum(engine.count_message(m) for m in msgs)
        assert engine.count(msgs) == total
    assert engine.count_overhead() > 0


async def test_kv_reuse_keeps_results_identical(engine: MLXEngine) -> None:
    key = f"kv-{uuid.uuid4()}"
    turn1 = chat("My name is Ana. What is 2 + 2?")
    reply1, chunks1 = await collect(engine, turn1, key=key)
    assert chunks1[-1].usage is not None
    # a new key: at most the chat template's public preamble comes from the cache
    public = common_prefix(engine.prompt_caches.public, engine.encode_prompt(turn1))
    assert chunks1[-1].usage.cached_tokens in (0, public)

    turn2 = [*turn1, {"role": "assistant", "content": reply1}]
    turn2.append({"role": "user", "content": "What is my name?"})
    warm, warm_chunks = await collect(engine, turn2, key=key)
    usage = warm_chunks[-1].usage
    assert usage is not None
    # At least turn 1's whole prompt was served from the cache.
    assert usage.cached_tokens >= len(engine.encode_prompt(turn1))
    assert usage.cached_tokens < usage.prompt_tokens

    cold, cold_chunks = await collect(engine, turn2)
    assert cold_chunks[-1].usage is not None and cold_chunks[-1].usage.cached_tokens == 0
    assert warm == cold
    assert [c.token_ids for c in warm_chunks] == [c.token_ids for c in cold_chunks]


async def test_another_user_starts_from_the_public_preamble_only(engine: MLXEngine) -> None:
    """The chat template's preamble (SmolLM2's default system message) is the same for every
    lone user message: a user's first request reuses its KV from anyone's, and no more of
    another user's prompt; the reply is the cold reply."""
    public = engine.prompt_caches.public

    def lone(text: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": text}]

    assert len(public) >= 10 and engine.encode_prompt(lone("anything"))[: len(public)] == public
    await collect(engine, lone("My name is Ana. What is 2 + 2?"), key=f"ana-{uuid.uuid4()}/s")
    mine = lone("My name is Ana. What is 3 + 3?")  # shares more than the preamble with Ana's
    warm, chunks = await collect(engine, mine, key=f"bo-{uuid.uuid4()}/s")
    assert chunks[-1].usage is not None and chunks[-1].usage.cached_tokens == len(public)
    cold, _ = await collect(engine, mine)
    assert warm == cold


async def test_identical_prompt_reuses_all_but_one_token(engine: MLXEngine) -> None:
    key = f"same-{uuid.uuid4()}"
    first, _ = await collect(engine, FRANCE, key=key)
    again, chunks = await collect(engine, FRANCE, key=key)
    usage = chunks[-1].usage
    assert usage is not None and usage.cached_tokens == usage.prompt_tokens - 1
    assert again == first


async def test_cancel_stops_early_and_leaves_a_consistent_cache(engine: MLXEngine) -> None:
    key = f"cancel-{uuid.uuid4()}"
    msgs = chat("Write a long story about a dragon.")
    params = GenerationParams(max_tokens=16)
    got = 0
    async with contextlib.aclosing(engine.stream(msgs, params, cache_key=key)) as stream:
        async for _chunk in stream:
            got += 1
            if got == 3:
                break
    # The worker closes the generator at its next step and checks its cache back in.
    held: int | None = None
    for _ in range(200):
        held = await engine.worker.run(_cached_len, engine, key)
        if held is not None:
            break
        await asyncio.sleep(0.05)
    # Far fewer than the 16 requested: the worker stopped soon after the consumer left (it may
    # have run a few steps ahead of the consumer, never to the end).
    assert held is not None and held <= len(engine.encode_prompt(msgs)) + 8
    # The cancelled stream's cache is consistent: a full run reusing it gives the same tokens
    # as a cold one.
    warm, warm_chunks = await collect(engine, msgs, params, key=key)
    cold, _ = await collect(engine, msgs, params)
    usage = warm_chunks[-1].usage
    assert usage is not None and usage.cached_tokens > 0
    assert warm == cold


async def test_task_cancellation_does_not_break_the_engine(engine: MLXEngine) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        params = GenerationParams(max_tokens=200)
        async for _ in engine.stream(chat("Count to one hundred."), params):
            started.set()
            await asyncio.sleep(0)  # a slow client: the task is cancelled while streaming

    task = asyncio.create_task(consume())
    await started.wait()  # cancel mid-stream, however fast decoding is
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text, _ = await collect(engine, FRANCE)
    assert "Paris" in text


async def test_concurrent_streams_do_not_interleave(engine: MLXEngine) -> None:
    prompts = [FRANCE, chat("Name three colors."), chat("What is the opposite of hot?")]
    alone = [await collect(engine, p) for p in prompts]
    together = await asyncio.gather(
        *(collect(engine, p, key=f"conc-{i}-{uuid.uuid4()}") for i, p in enumerate(prompts))
    )
    assert [t for t, _ in together] == [t for t, _ in alone]


async def test_max_tokens_gives_length(engine: MLXEngine) -> None:
    msgs = chat("Write a poem about the sea.")
    _, chunks = await collect(engine, msgs, GenerationParams(max_tokens=3))
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_stop_string_cuts_the_text(engine: MLXEngine) -> None:
    full, _ = await collect(engine, FRANCE)
    assert "Paris" in full
    cut, chunks = await collect(engine, FRANCE, GenerationParams(max_tokens=12, stop=("Paris",)))
    assert chunks[-1].finish_reason == "stop"
    assert cut == full[: full.index("Paris")]


async def test_seeded_sampling_repeats_and_does_not_leak(engine: MLXEngine) -> None:
    seeded = GenerationParams(temperature=1.0, top_p=0.95, max_tokens=10, seed=1234)
    msgs = chat("Invent a name for a cat.")
    a, _ = await collect(engine, msgs, seeded)
    # Unseeded sampling in between must not disturb a seeded request.
    await collect(engine, msgs, GenerationParams(temperature=1.0, max_tokens=5))
    b, _ = await collect(engine, msgs, seeded)
    assert a == b


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (GenerationParams(temperature=-1), "temperature"),
        (GenerationParams(top_p=0), "top_p"),
        (GenerationParams(max_tokens=0), "max_tokens"),
        (GenerationParams(stop=("",)), "stop"),
    ],
)
async def test_bad_params_are_named(
    engine: MLXEngine, params: GenerationParams, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        await collect(engine, FRANCE, params)


async def test_prompt_longer_than_the_window_is_rejected(engine: MLXEngine) -> None:
    small = MLXEngine(
        engine.model, engine.tokenizer, engine.worker, model_id="small", context_window=32
    )
    with pytest.raises(ValueError, match="context window"):
        await collect(small, chat("word " * 40))
    # Near the edge, max_tokens is capped by the room left.
    msgs = [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}]
    room = small.context_window - small.count(msgs)
    _, chunks = await collect(small, msgs, GenerationParams(max_tokens=100))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= room


async def test_complete_returns_the_whole_text(engine: MLXEngine) -> None:
    text = await engine.complete(FRANCE, GREEDY)
    streamed, _ = await collect(engine, FRANCE)
    assert text == streamed


def test_stop_text_holds_back_possible_prefixes() -> None:
    s = _StopText(["STOP"])
    assert s.feed("abc ST") == ("abc ", False)
    assert s.feed("O") == ("", False)
    assert s.feed("x") == ("STOx", False)
    assert s.feed("yS") == ("y", False)
    assert s.feed("TOP tail") == ("", True)


async def test_a_new_session_starts_from_a_copy_of_the_shared_persona_prefix(
    engine: MLXEngine,
) -> None:
    persona = "You are Pippa, a cheerful daughter who talks with her dad. " * 6
    user = uuid.uuid4()
    first, second = f"{user}/a", f"{user}/b"
    a1 = chat("Hi! What is 2 + 2?", system=persona)
    reply_a, _ = await collect(engine, a1, key=first)
    # another session of the persona: its first turn reuses the persona's KV
    b1 = chat("Hello, what is the capital of France?", system=persona)
    warm_b, chunks_b = await collect(engine, b1, key=second)
    usage = chunks_b[-1].usage
    assert usage is not None
    assert usage.cached_tokens >= engine.count(chat(system=persona)) - 5
    cold_b, cold_chunks = await collect(engine, b1)
    assert [c.token_ids for c in chunks_b] == [c.token_ids for c in cold_chunks]
    # the session it was copied from goes on as if nothing had been shared
    a2 = [*a1, {"role": "assistant", "content": reply_a}, {"role": "user", "content": "And 3 + 3?"}]
    warm_a, chunks_a = await collect(engine, a2, key=first)
    cold_a, _ = await collect(engine, a2)
    assert chunks_a[-1].usage is not None and chunks_a[-1].usage.cached_tokens > usage.cached_tokens
    assert warm_a == cold_a and warm_b == cold_b
