"""KV-prefix stability and assembly latency of the memory strategies, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cache_hits.py             # both, real tokenizer
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cache_hits.py --no-latency --turns 120

Cache hits: a synthetic chat (deterministic; topical words so recall varies with the question)
is driven through each strategy the way the service does it (assemble, reply, store, observe
with the Context). A turn is a *hit* when its templated prompt (the engine's token ids) starts
with the previous turn's whole prompt: then the engine's KV cache serves all of it and only the
new tail is prefilled. `reused` is the share of prompt tokens the cache could serve (longest
common token prefix with the previous prompt), which also credits partial hits.

Latency: assemble() at N stored turns (default 10,000 messages) with the real tokenizer for
what is rendered fresh (persona, pinned, summary, recalled lines, new message); stored messages
carry their counts, so history is summed, never re-tokenized. vector/hybrid here use an
in-memory BM25 recaller (memory.bm25.BM25), so their numbers exclude the query embedding
(benchmarks/memory.py measures the real recaller).

Other benchmarks call `prefix_stats(contexts, encode)` and `simulate(...)`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.llm.prompt_cache import common_prefix  # noqa: E402
from memory import registry  # noqa: E402
from memory.base import MemoryDeps  # noqa: E402
from memory.bm25 import BM25  # noqa: E402
from memory.types import (  # noqa: E402
    LLM,
    AssembleRequest,
    Context,
    ContextOverflowError,
    MemoryState,
    PinnedFact,
    SessionInfo,
    StoredMessage,
)

Encode = Callable[[list[dict[str, str]]], list[int]]

SESSION = SessionInfo(id="bench", user_id="bench", persona_id="mina")
PERSONA = (
    "You are Mina, a cheerful 17-year-old daughter chatting with her father. You are warm, "
    "curious and a little teasing. Keep replies short."
)
PINNED = [
    PinnedFact(id="p1", text="Dad's name is Minho; he is a nurse in Busan.", source="persona"),
    PinnedFact(id="p2", text="Speak casually (Korean 반말 style).", source="style"),
]
TOPICS = {
    "school": "exam math teacher homework grade class test study",
    "dog": "Bo dog vet walk leash bark park puppy",
    "food": "kimchi soup dinner recipe spicy noodles lunch market",
    "travel": "Jeju flight beach hotel trip ferry summer island",
    "music": "piano concert song practice lesson guitar band chord",
    "health": "doctor cough medicine sleep tired fever clinic rest",
}
CONFIGS: dict[str, dict[str, Any]] = {
    "buffer": {},
    "window": {"k": 8},
    "token_buffer": {"max_tokens": 1024},
    "summary": {"summarizer": "extractive"},
    "summary_buffer": {"max_tokens": 1024, "summarizer": "extractive"},
    "vector": {},
    "hybrid": {"summarizer": "extractive"},
}


def message_units(ctx: Context) -> list[str]:
    """Without a tokenizer: one unit per message (a prefix of messages is a prefix of tokens)."""
    return [f"{m['role']}\x00{m['content']}" for m in ctx.to_messages()]


@dataclass
class PrefixStats:
    turns: int
    hit_rate: float  # share of consecutive turns whose prompt extends the previous prompt
    reused: float  # share of prompt tokens (units) a prefix cache could serve
    mean_prompt: float


def prefix_stats(contexts: Sequence[Context], encode: Encode | None = None) -> PrefixStats:
    """KV-prefix stability of consecutive prompts (the cache-hit rate)."""
    seqs: list[Sequence[Any]] = [
        encode(c.to_messages()) if encode else message_units(c) for c in contexts
    ]
    pairs = list(zip(seqs, seqs[1:], strict=False))
    hits = sum(1 for a, b in pairs if common_prefix(a, b) == len(a))
    shared = sum(common_prefix(a, b) for a, b in pairs)
    total = sum(len(b) for _, b in pairs)
    return PrefixStats(
        turns=len(contexts),
        hit_rate=hits / len(pairs) if pairs else 1.0,
        reused=shared / total if total else 1.0,
        mean_prompt=statistics.fmean(c.total_tokens for c in contexts) if contexts else 0.0,
    )


class LexicalRecaller:
    """BM25 over the session's messages: a cheap stand-in for the vector recaller. Records how
    long each recall took, so the strategy's own assembly time can be told apart."""

    def __init__(self) -> None:
        self.bm25 = BM25()
        self.last_ms = 0.0

    async def recall(self, session, query, history, exclude_ids, limit, scope=()):  # type: ignore[no-untyped-def]
        start = time.perf_counter()  # one session per run here: the scope is always empty
        allowed = {m.id for m in history} - set(exclude_ids)
        ranked = self.bm25.top(query, limit, allowed)
        self.last_ms = (time.perf_counter() - start) * 1000
        return ranked

    async def observe(self, session, messages):  # type: ignore[no-untyped-def]
        for m in messages:
            self.bm25.add(m.id, m.content)

    async def forget(self, session, message_ids=None):  # type: ignore[no-untyped-def]
        for i in message_ids or []:
            self.bm25.remove(i)


def synthetic_text(rng: random.Random, words: int) -> str:
    topic = TOPICS[rng.choice(sorted(TOPICS))].split()
    filler = [
        "I",
        "think",
        "we",
        "should",
        "maybe",
        "talk",
        "about",
        "it",
        "later",
        "today",
        "because",
    ]
    out = [rng.choice(topic) if rng.random() < 0.4 else rng.choice(filler) for _ in range(words)]
    return " ".join(out).capitalize() + "."


def make_message(llm: LLM, i: int, role: str, text: str, when: datetime) -> StoredMessage:
    tokens = llm.count_message({"role": role, "content": text})
    return StoredMessage(id=i, role=role, content=text, tokens=tokens, created_at=when)  # type: ignore[arg-type]


async def simulate(
    name: str,
    params: Mapping[str, Any],
    llm: LLM,
    turns: int = 60,
    budget: int = 2048,
    recaller: Any = None,
    seed: int = 0,
) -> list[Context]:
    """Drive a strategy through a synthetic chat; the Contexts in turn order."""
    rng = random.Random(seed)
    strategy = registry.create(
        name, dict(params), MemoryDeps(llm=llm, recaller=recaller or LexicalRecaller())
    )
    history: list[StoredMessage] = []
    state = MemoryState()
    contexts: list[Context] = []
    t0 = datetime(2026, 11, 1, 9)
    for t in range(turns):
        question = synthetic_text(rng, rng.randint(6, 40))
        req = AssembleRequest(
            session=SESSION, system_prompt=PERSONA, persona_pinned=PINNED, history=history,
            state=state, new_message=question, budget=budget,
        )  # fmt: skip
        try:
            ctx = await strategy.assemble(req)
        except ContextOverflowError:
            break  # the buffer strategy: the conversation outgrew the budget
        contexts.append(ctx)
        when = t0 + timedelta(hours=3 * t)
        new = [
            make_message(llm, 2 * t + 1, "user", question, when),
            make_message(
                llm, 2 * t + 2, "assistant", synthetic_text(rng, rng.randint(8, 60)), when
            ),
        ]
        history = history + new
        state = await strategy.observe(SESSION, history, state, new, ctx)
    return contexts


async def assembly_latency(
    name: str,
    params: Mapping[str, Any],
    llm: LLM,
    stored: int = 10_000,
    budget: int = 2048,
    repeats: int = 200,
) -> dict[str, float]:
    """p50/p95 of assemble() over `stored` messages (state as after an import), in ms."""
    rng = random.Random(1)
    t0 = datetime(2025, 1, 1)
    history = [
        make_message(
            llm, i + 1, "user" if i % 2 == 0 else "assistant",
            synthetic_text(rng, rng.randint(6, 50)), t0 + timedelta(minutes=30 * i),
        )
        for i in range(stored)
    ]  # fmt: skip
    recaller = LexicalRecaller()
    strategy = registry.create(name, dict(params), MemoryDeps(llm=llm, recaller=recaller))
    state = await strategy.observe(SESSION, history, MemoryState(), history)
    times: list[float] = []
    own: list[float] = []  # without the recaller's time
    overflow = False
    for _ in range(repeats):
        recaller.last_ms = 0.0
        req = AssembleRequest(
            session=SESSION, system_prompt=PERSONA, persona_pinned=PINNED, history=history,
            state=state, new_message=synthetic_text(rng, rng.randint(6, 40)), budget=budget,
        )  # fmt: skip
        start = time.perf_counter()
        try:
            await strategy.assemble(req)
        except ContextOverflowError:
            overflow = True
        times.append((time.perf_counter() - start) * 1000)
        own.append(times[-1] - recaller.last_ms)
    times.sort()
    own.sort()
    return {
        "p50_ms": times[len(times) // 2],
        "p95_ms": times[int(len(times) * 0.95) - 1],
        "own_p95_ms": own[int(len(own) * 0.95) - 1],
        "overflow": float(overflow),
    }


def load_real_engine() -> tuple[LLM, Encode, Callable[[], None]]:
    from app.config import Settings
    from app.llm.factory import load_engine
    from app.llm.worker import MLXWorker

    worker = MLXWorker(name="bench-mlx")
    engine = load_engine(Settings(), worker)
    return engine, engine.encode_prompt, worker.shutdown  # type: ignore[attr-defined]


async def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=80)
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--stored", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--strategies", default=",".join(CONFIGS))
    args = ap.parse_args(argv)
    llm, encode, close = load_real_engine()
    names = args.strategies.split(",")
    try:
        print(f"| strategy | turns | cache-hit rate | reused prompt tokens | mean prompt "
              f"(budget {args.budget}) |")  # fmt: skip
        print("| --- | --- | --- | --- | --- |")
        for name in names:
            contexts = await simulate(name, CONFIGS[name], llm, args.turns, args.budget)
            s = prefix_stats(contexts, encode)
            print(f"| {name} | {s.turns} | {s.hit_rate:.0%} | {s.reused:.0%} | "
                  f"{s.mean_prompt:.0f} |")  # fmt: skip
        if args.no_latency:
            return
        print(f"\n| strategy (at {args.stored:,} stored messages) | assemble p50 (ms) | p95 (ms) "
              "| p95 without the recall call (ms) | note |")  # fmt: skip
        print("| --- | --- | --- | --- | --- |")
        for name in names:
            r = await assembly_latency(
                name, CONFIGS[name], llm, args.stored, args.budget, args.repeats
            )
            note = "raises ContextOverflowError (by design)" if r["overflow"] else ""
            print(f"| {name} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['own_p95_ms']:.2f} | "
                  f"{note} |")  # fmt: skip
    finally:
        close()


if __name__ == "__main__":
    asyncio.run(main())
