"""Memory benchmark: LoCoMo evidence recall, assembly latency at 10k turns, import throughput.

Evidence recall: each LoCoMo conversation is imported as one session (speaker A = user,
speaker B = assistant, "Speaker: text" so names survive, photo captions kept as "[shares ...]",
created_at from the session dates), indexed through the HybridRecaller, and for every question
(categories 1-5 with evidence) the context is dry-run at a 2,048-token budget. The score is the
share of the question's evidence turns present VERBATIM (recalled or recent parts; a summary
covering a turn does not count).

Baselines and recall-only rankings are filled the way the issue's baselines were: turns rendered
`[session date] Speaker: text`, greedy in rank order until 2,048 SmolLM2 tokens. Strategies use
their own budgeting (persona + new message + template overhead included in the 2,048).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/memory.py [--quick] [--ablation]

The LoCoMo zip is read in place (../shared/data/locomo); nothing is copied into the repo.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Running as a script puts benchmarks/ first on sys.path, where this file would shadow `memory`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.config import Settings  # noqa: E402
from app.llm.factory import load_engine  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402
from app.store.history import HistoryCache  # noqa: E402
from app.store.records import NewMessage  # noqa: E402
from app.store.repo import Store  # noqa: E402
from benchmarks.embedder_candidates import CANDIDATES, candidate  # noqa: E402
from memory import registry  # noqa: E402
from memory.base import MemoryDeps  # noqa: E402
from memory.embedder_choice import DEFAULT_EMBEDDER  # noqa: E402
from memory.recall import HybridRecaller, RecallParams  # noqa: E402
from memory.types import (  # noqa: E402
    AssembleRequest,
    MemoryState,
    MemoryStrategyError,
    SessionInfo,
    StoredMessage,
)
from memory.vector_index import IndexRecord, VectorIndex  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo10.zip"
BUDGET = 2048
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SUMMARY_PARAMS = {"summarizer": "extractive", "summary_max_chunks": None}


# -- data ---------------------------------------------------------------------------------------
@dataclass
class Turn:
    dia: str
    speaker: str
    text: str
    date: str  # the session's date as LoCoMo writes it
    at: datetime


@dataclass
class Question:
    text: str
    evidence: list[str]
    category: int
    answer: str = ""  # the gold answer (categories 1-4; the answer benchmark scores replies)


@dataclass
class Conversation:
    name: str
    speaker_a: str
    speaker_b: str
    turns: list[Turn]
    questions: list[Question]
    messages: list[StoredMessage] = field(default_factory=list)
    fill_tokens: list[int] = field(default_factory=list)  # `[date] Speaker: text` in SmolLM2


def _evidence(raw: Sequence[str], known: set[str]) -> list[str]:
    """Normalise LoCoMo's evidence ids ("D8:6; D9:17", "D:11:26", "D30:05"); drop unknown ones."""
    out = []
    for item in raw:
        for part in re.split(r"[;,\s]+", item):
            m = re.fullmatch(r"D:?(\d+):0*(\d+)", part.strip())
            if m and f"D{m.group(1)}:{m.group(2)}" in known:
                out.append(f"D{m.group(1)}:{m.group(2)}")
    return sorted(set(out))


def load_locomo(path: Path) -> list[Conversation]:
    if not path.is_file():
        raise SystemExit(f"LoCoMo data not found at {path} (see ../shared/data/locomo/README.md)")
    convs = []
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if re.search(r"locomo10_v2/\d+\.json$", n))
        for name in names:
            d = json.loads(zf.read(name))
            sessions = sorted(
                int(k.split("_")[1])
                for k, v in d.items()
                if re.fullmatch(r"session_\d+", k) and isinstance(v, list)
            )
            turns = []
            for s in sessions:
                date = d[f"session_{s}_date_time"].strip()
                start = datetime.strptime(date, "%I:%M %p on %d %B, %Y")
                for i, t in enumerate(d[f"session_{s}"]):
                    text = t["text"]
                    if t.get("blip_caption"):
                        text = f"{text} [shares {t['blip_caption']}]"
                    at = start + timedelta(seconds=30 * i)
                    turns.append(Turn(t["dia_id"], t["speaker"], text, date, at))
            known = {t.dia for t in turns}
            qs = [
                Question(q["question"], ev, q["category"], str(q.get("answer", "")))
                for q in d["qa"]
                if q.get("category") in CATEGORIES
                and (ev := _evidence(q.get("evidence", []), known))
            ]
            stem = Path(name).stem
            convs.append(Conversation(stem, d["speaker_a"], d["speaker_b"], turns, qs))
    return convs


def prepare(conv: Conversation, engine: Any, tokenizer: Any) -> None:
    for i, t in enumerate(conv.turns):
        role = "user" if t.speaker == conv.speaker_a else "assistant"
        content = f"{t.speaker}: {t.text}"
        tokens = engine.count_message({"role": role, "content": content})
        conv.messages.append(
            StoredMessage(id=i + 1, role=role, content=content, tokens=tokens, created_at=t.at)
        )
        conv.fill_tokens.append(len(tokenizer.encode(f"[{t.date}] {t.speaker}: {t.text}")))


def persona(conv: Conversation) -> str:
    return f"You are {conv.speaker_b}, chatting with your friend {conv.speaker_a}."


# -- scoring ------------------------------------------------------------------------------------
class Scores:
    def __init__(self) -> None:
        self.by_cat: dict[int, list[float]] = {c: [] for c in CATEGORIES}

    def add(self, category: int, value: float) -> None:
        self.by_cat[category].append(value)

    @property
    def overall(self) -> float:
        vals = [v for vs in self.by_cat.values() for v in vs]
        return float(np.mean(vals)) if vals else float("nan")

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.by_cat.values())

    def cat(self, c: int) -> float:
        return float(np.mean(self.by_cat[c])) if self.by_cat[c] else float("nan")


def evidence_recall(q: Question, conv: Conversation, shown_ids: set[int]) -> float:
    index = {t.dia: i + 1 for i, t in enumerate(conv.turns)}  # message id = position + 1
    return sum(index[e] in shown_ids for e in q.evidence) / len(q.evidence)


def greedy_fill(ranked: Sequence[int], conv: Conversation, budget: int = BUDGET) -> set[int]:
    used, shown = 0, set()
    for mid in ranked:
        cost = conv.fill_tokens[mid - 1]
        if used + cost <= budget:
            used += cost
            shown.add(mid)
    return shown


def fill_label(label: str, budget: int) -> str:
    """A ranking's row: its label at the default fill, "label @ 512" at another."""
    return label if budget == BUDGET else f"{label} @ {budget:,}"


class CachedEmbedder:
    """Caches single-text (query) embeddings: many rankers ask the same question. Evaluation
    only; the latency section uses the uncached embedder."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.cache: dict[str, list[float]] = {}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.inner.embed(texts)

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) != 1:
            return await self.inner.embed_query(texts)
        if texts[0] not in self.cache:
            self.cache[texts[0]] = (await self.inner.embed_query(texts))[0]
        return [self.cache[texts[0]]]


# -- the benchmark ------------------------------------------------------------------------------
RankerFactory = Callable[[], HybridRecaller]


def recall_configs(index: VectorIndex, ablation: bool) -> dict[str, RankerFactory]:
    def make(**kw: Any) -> RankerFactory:
        return lambda: HybridRecaller(index, RecallParams(**kw))

    configs = {
        "flat dense (embedder top-k)": make(dense_k=400, lexical_k=0, neighbour_weights=()),
        "flat BM25": make(dense_k=0, lexical_k=400, neighbour_weights=()),
        "hybrid recall (default)": make(),
    }
    if ablation:
        configs.update(
            {
                "dense + BM25 (RRF), no neighbours": make(neighbour_weights=()),
                "BM25 + neighbours": make(dense_k=0),
                "dense + neighbours": make(lexical_k=0),
                "RRF + neighbours ±1 only (0.5)": make(neighbour_weights=(0.5,)),
                "RRF k=60, 60+60 candidates, neighbours": make(rrf_k=60, dense_k=60, lexical_k=60),
                "BM25 hits count whole (no coverage)": make(lexical_coverage=0.0),
                "BM25 hits by their share, coverage 0.25": make(lexical_coverage=0.25),
                "BM25 hits by their share, coverage 1": make(lexical_coverage=1.0),
                "plain cosine (no centring)": make(dense_centring=0.0),
                "dense centring 1": make(dense_centring=1.0),
                "questions weigh half (question_weight 0.5)": make(question_weight=0.5),
            }
        )
    return configs


async def evaluate(
    convs: list[Conversation],
    engine: Any,
    embedder: Any,
    data_dir: Path,
    strategies: dict[str, dict[str, Any]],
    ablation: bool,
    fills: Sequence[int] = (BUDGET,),
) -> tuple[dict[str, Scores], float, VectorIndex]:
    cached = CachedEmbedder(embedder)
    index = VectorIndex.open(data_dir, None, cached)
    importer = HybridRecaller(index)
    configs = recall_configs(index, ablation)
    results: dict[str, Scores] = {"recency": Scores(), **{k: Scores() for k in configs}}
    # a small room (a persona-heavy context at 1,024 leaves recall ~250-500 tokens) tests the
    # ranking's top, where the 2,048 fill forgives a strong hit ranked below middling ones
    for b in fills:
        if b != BUDGET:
            results.update({fill_label(k, b): Scores() for k in configs})
    results.update({f"strategy: {k}": Scores() for k in strategies})
    import_time = import_turns = 0.0
    for conv in convs:
        session = SessionInfo(id=f"locomo-{conv.name}", user_id="bench", persona_id="locomo")
        t0 = time.perf_counter()
        await importer.observe(session, conv.messages)
        import_time += time.perf_counter() - t0
        import_turns += len(conv.messages)
        print(
            f"  {conv.name}: imported {len(conv.messages)} turns in "
            f"{time.perf_counter() - t0:.1f}s; {len(conv.questions)} questions",
            flush=True,
        )
        newest_first = [m.id for m in reversed(conv.messages)]
        for q in conv.questions:
            shown = greedy_fill(newest_first, conv)
            results["recency"].add(q.category, evidence_recall(q, conv, shown))
        for label, factory in configs.items():
            recaller = factory()
            for q in conv.questions:
                ranked = await recaller.recall(session, q.text, conv.messages, set(), 400)
                for budget in fills:
                    shown = greedy_fill(ranked, conv, budget)
                    results[fill_label(label, budget)].add(
                        q.category, evidence_recall(q, conv, shown)
                    )
        deps = MemoryDeps(llm=engine, recaller=importer)
        for label, (name, params) in ((k, _split(v)) for k, v in strategies.items()):
            strat = registry.create(name, params, deps)
            state = await strat.observe(session, conv.messages, MemoryState(), conv.messages)
            for q in conv.questions:
                req = AssembleRequest(
                    session=session,
                    system_prompt=persona(conv),
                    history=conv.messages,
                    state=state,
                    new_message=q.text,
                    budget=BUDGET,
                )
                try:
                    ctx = await strat.assemble(req)
                except MemoryStrategyError:
                    continue  # e.g. `buffer`: the conversation never fits; reported as n=0
                shown = {
                    m.id
                    for p in ctx.parts
                    if p.kind in ("kept", "recalled", "recent")
                    for m in p.messages
                    if m.id is not None
                }
                results[f"strategy: {label}"].add(q.category, evidence_recall(q, conv, shown))
    return results, import_turns / max(import_time, 1e-9), index


def _split(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return spec["name"], spec.get("params", {})


async def latency(
    convs: list[Conversation],
    engine: Any,
    embedder: Any,
    index_dir: Path,
    source: VectorIndex,
    strategies: dict[str, dict[str, Any]],
    n_turns: int,
    n_queries: int,
) -> tuple[dict[str, tuple[float, float, float]], dict[str, float]]:
    """p50/p95 of what a turn pays before generation at n_turns stored turns, the way the
    service does it: read the history from the store (SQLite, through its history cache), then
    assemble (the first call reported apart; the session's vectors are already loaded by the
    strategy's observe). Also the history read alone: a full load, a cache hit, an append."""
    store = Store(f"sqlite:///{index_dir / 'store.db'}")
    user = store.get_or_create_user()
    record = store.create_session(user.id, "locomo", "hybrid")
    pool = [(c, m) for c in convs for m in c.messages]
    start = pool[0][1].created_at
    sources = [pool[i % len(pool)] for i in range(n_turns)]
    store.add_messages(
        user.id,
        record.id,
        [
            NewMessage(
                role=m.role,
                content=m.content,
                tokens=m.tokens,
                created_at=start + timedelta(minutes=i),
            )
            for i, (_, m) in enumerate(sources)
        ],
    )
    msgs = store.history(user.id, record.id)
    reads = history_reads(store, user.id, record.id)

    index = VectorIndex.open(index_dir, None, embedder)  # uncached: query embedding included
    recaller = HybridRecaller(index)
    session = SessionInfo(id=record.id, user_id=user.id, persona_id="locomo")
    embs = {}
    for conv in convs:
        got = source.collection.get(
            where={"session_id": f"locomo-{conv.name}"}, include=["embeddings", "metadatas"]
        )
        for meta, vec in zip(got["metadatas"], got["embeddings"], strict=True):
            embs[(conv.name, int(meta["message_id"]))] = np.asarray(vec, dtype=np.float32)
    # Reuses the source turn's vector (its text is the same; only the date prefix moved): this
    # section measures time, and re-embedding 10k turns would take many minutes.
    await index.upsert(
        session,
        [IndexRecord(m.id, m.role, recaller.document(m), m.created_at) for m in msgs],
        embeddings=np.stack([embs[(conv.name, src.id)] for conv, src in sources]),
    )
    questions = [q.text for c in convs for q in c.questions][:n_queries]
    deps = MemoryDeps(llm=engine, recaller=recaller)
    out = {}
    for label, spec in strategies.items():
        name, params = _split(spec)
        strat = registry.create(name, params, deps)
        state = await strat.observe(session, msgs, MemoryState(), msgs)
        times = []
        for q in questions:
            t0 = time.perf_counter()
            history = await asyncio.to_thread(store.history, user.id, record.id)
            req = AssembleRequest(
                session=session,
                system_prompt=persona(convs[0]),
                history=history,
                state=state,
                new_message=q,
                budget=BUDGET,
            )
            try:
                await strat.assemble(req)
            except MemoryStrategyError:
                break
            times.append((time.perf_counter() - t0) * 1000)
        if times:
            warm = times[1:] or times
            out[label] = (times[0], float(np.percentile(warm, 50)), float(np.percentile(warm, 95)))
    store.close()
    return out, reads


def history_reads(store: Store, user_id: str, session_id: str, n: int = 15) -> dict[str, float]:
    """Median ms of Store.history: a full load (cache dropped), a hit, and one append."""

    def median_ms(prepare: Callable[[], object]) -> float:
        times = []
        for _ in range(n):
            prepare()
            t0 = time.perf_counter()
            store.history(user_id, session_id)
            times.append((time.perf_counter() - t0) * 1000)
        return float(np.median(times))

    def drop() -> None:
        store.history_cache = HistoryCache()

    def append() -> None:
        store.add_message(user_id, session_id, "user", "one more turn", tokens=6)

    return {
        "full load": median_ms(drop),
        "cached": median_ms(lambda: None),
        "after an append": median_ms(append),
    }


# -- report -------------------------------------------------------------------------------------
def table(results: dict[str, Scores]) -> str:
    head = (
        "| ranking / strategy | n | overall | "
        + " | ".join(f"{c} {n}" for c, n in CATEGORIES.items())
        + " |"
    )
    lines = [head, "|" + "---|" * (3 + len(CATEGORIES))]
    for label, s in results.items():
        if s.n == 0:
            lines.append(f"| {label} | 0 | n/a (does not fit) |" + " |" * len(CATEGORIES))
            continue
        cats = " | ".join(f"{s.cat(c):.3f}" for c in CATEGORIES)
        lines.append(f"| {label} | {s.n} | **{s.overall:.3f}** | {cats} |")
    return "\n".join(lines)


STRATEGIES: dict[str, dict[str, Any]] = {
    "window": {"name": "window"},
    "token_buffer": {"name": "token_buffer"},
    "summary_buffer": {"name": "summary_buffer", "params": SUMMARY_PARAMS},
    "vector": {"name": "vector"},
    "hybrid": {"name": "hybrid", "params": SUMMARY_PARAMS},
    "hybrid (recall <= 1,024 tokens: shorter prefill)": {
        "name": "hybrid",
        "params": {**SUMMARY_PARAMS, "recall_max_tokens": 1024},
    },
    "hybrid (buffer 512, summary 256, recall <= 1,024, k 48: the earlier defaults)": {
        "name": "hybrid",
        "params": {
            **SUMMARY_PARAMS,
            "buffer_tokens": 512,
            "summary_max_tokens": 256,
            "recall_max_tokens": 1024,
            "recall_k": 48,
        },
    },
}


async def main_async(args: argparse.Namespace) -> None:
    convs = load_locomo(Path(args.data))
    if args.quick:
        convs = convs[: args.quick]
    worker = MLXWorker(name="mlx-bench")
    try:
        engine = load_engine(Settings(), worker)
        embedder = candidate(args.embedder, worker)
        embedder.load()
        for conv in convs:
            prepare(conv, engine, engine.tokenizer)
        n_q = sum(len(c.questions) for c in convs)
        print(
            f"LoCoMo: {len(convs)} conversations, {sum(len(c.turns) for c in convs)} turns, "
            f"{n_q} questions",
            flush=True,
        )
        strategies = {} if args.no_strategies else STRATEGIES
        if args.strategies:
            wanted = [w.strip() for w in args.strategies.split(",")]
            strategies = {k: v for k, v in STRATEGIES.items() if v["name"] in wanted}
        with tempfile.TemporaryDirectory(prefix="memento-bench-") as tmp:
            results, rate, index = await evaluate(
                convs,
                engine,
                embedder,
                Path(tmp) / "eval",
                strategies,
                args.ablation,
                [int(b) for b in args.fill.split(",")],
            )
            lat, reads = {}, {}
            if args.latency_turns:
                lat_strats = {k: v for k, v in STRATEGIES.items() if "(" not in k}
                lat, reads = await latency(
                    convs,
                    engine,
                    embedder,
                    Path(tmp) / "latency",
                    index,
                    lat_strats,
                    args.latency_turns,
                    args.latency_queries,
                )
        print()
        print(
            f"Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/memory.py "
            f"{shlex.join(sys.argv[1:])}`".replace(" `", "`")
        )
        print()
        print(f"### LoCoMo evidence recall at a {BUDGET}-token budget ({n_q} questions)\n")
        print(table(results))
        print(
            f"\nImport throughput ({args.embedder} embedding + Chroma upsert + BM25): "
            f"{rate:.1f} turns/s"
        )
        if lat:
            print(
                f"\n### Assembly latency at {args.latency_turns} stored turns "
                f"(ms, {args.latency_queries} queries)\n"
            )
            print("History read from the store + assemble:\n")
            print("| strategy | first call | p50 | p95 |\n|---|---|---|---|")
            for label, (cold, p50, p95) in lat.items():
                print(f"| {label} | {cold:.1f} | {p50:.1f} | {p95:.1f} |")
            print(
                "\nThe history read alone (SQLite, median ms): "
                + ", ".join(f"{k} {v:.1f}" for k, v in reads.items())
            )
    finally:
        worker.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="path to locomo10.zip")
    ap.add_argument(
        "--quick",
        type=int,
        nargs="?",
        const=2,
        default=0,
        help="only the first N conversations (default 2)",
    )
    ap.add_argument("--ablation", action="store_true", help="also rank with levers toggled")
    ap.add_argument("--no-strategies", action="store_true", help="recall-only rankings")
    ap.add_argument(
        "--fill",
        default=str(BUDGET),
        help="comma-separated token budgets the recall-only rankings fill (default %(default)s)",
    )
    ap.add_argument("--strategies", default="", help="comma-separated strategy names to run")
    ap.add_argument("--latency-turns", type=int, default=10_000, help="0 to skip")
    ap.add_argument("--latency-queries", type=int, default=60)
    ap.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        choices=CANDIDATES,
        help="the recall's embedder (benchmarks/embedder_candidates.py)",
    )
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
