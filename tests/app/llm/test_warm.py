"""Prefill while the user types: MLXEngine.warm on the real model (issue 13)."""

from __future__ import annotations

import asyncio
import uuid

from app.llm.mlx_engine import MLXEngine
from app.llm.prompt_cache import common_prefix
from app.llm.types import GenerationParams

GREEDY = GenerationParams(max_tokens=12)
HEAD = [
    {"role": "system", "content": "You are Pippa, a cheerful daughter. Keep replies short."},
    {"role": "user", "content": "Dad here. We adopted a white kitten and named her Mochi."},
    {"role": "assistant", "content": "A kitten!! Send me pictures right now."},
]
NEXT = [*HEAD, {"role": "user", "content": "What did we name the kitten?"}]


async def reply(engine: MLXEngine, key: str | None) -> tuple[str, int]:
    chunks = [c async for c in engine.stream(NEXT, GREEDY, cache_key=key)]
    usage = chunks[-1].usage
    assert usage is not None
    return "".join(c.text for c in chunks), usage.cached_tokens


async def test_a_warmed_cache_serves_the_head_and_changes_no_output(engine: MLXEngine) -> None:
    key = f"warm-{uuid.uuid4()}"
    head = engine.tokenizer.apply_chat_template(HEAD, add_generation_prompt=False)
    warmed = await engine.warm(HEAD, cache_key=key)
    # nothing was cached but maybe the template's public preamble: the rest was prefilled
    public = common_prefix(engine.prompt_caches.public, head)
    assert warmed in (len(head), len(head) - public)
    assert await engine.warm(HEAD, cache_key=key) == 0  # already warm: nothing to do
    text, cached = await reply(engine, key)
    cold, cold_cached = await reply(engine, None)
    assert text == cold  # the same greedy reply as a cold prefill
    assert cold_cached == 0
    assert cached >= len(head)  # the turn prefilled only the new message
    assert engine.encode_prompt(NEXT)[: len(head)] == head  # the head is the prompt's prefix


async def test_a_turn_that_comes_meanwhile_keeps_its_own_cache(engine: MLXEngine) -> None:
    key = f"warm-{uuid.uuid4()}"
    long_head = [{**HEAD[0], "content": HEAD[0]["content"] + " Hello there." * 120}, *HEAD[1:]]
    warming = asyncio.create_task(engine.warm(long_head, cache_key=key))
    await asyncio.sleep(0)  # the warm-up is queued in the background lane
    text, _ = await reply(engine, key)  # a foreground turn of the same session
    warmed = await warming
    total = len(engine.tokenizer.apply_chat_template(long_head, add_generation_prompt=False))
    assert warmed < total  # it stopped: the turn took the cache
    entry = engine.prompt_caches._entries.get(key)
    assert entry is not None
    # the cache holds the turn's prompt and reply, not a warm-up's tokens
    assert entry.tokens[: len(engine.encode_prompt(NEXT))] == engine.encode_prompt(NEXT)


async def test_a_cancelled_warm_up_leaves_a_usable_cache(engine: MLXEngine) -> None:
    key = f"warm-{uuid.uuid4()}"
    long_head = [{**HEAD[0], "content": HEAD[0]["content"] + " Hello there." * 120}, *HEAD[1:]]
    warming = asyncio.create_task(engine.warm(long_head, cache_key=key))
    await asyncio.sleep(0.05)
    warming.cancel()
    await asyncio.gather(warming, return_exceptions=True)
    text, _ = await reply(engine, key)
    cold, _ = await reply(engine, None)
    assert text == cold
