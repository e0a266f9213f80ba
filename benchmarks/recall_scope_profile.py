"""In-process profile of HybridRecaller.recall at 10k turns: 100 sessions x 100 turns asked from
a new session (a memory scope) against the same turns in one session asked in itself (issue 19).

No server: one recaller over a VectorIndex with the default embedder, the questions asked in
turn to both layouts (and, with --baseline REV, to the recall code of that git revision too,
loaded beside this one), so that the load of a shared machine hits them alike and the result is
read as ratios. Query embedding is timed apart: each recall runs once with the real embedder
and once with a stub that hands out the same query vector precomputed ("rest").

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/recall_scope_profile.py \
        [--baseline a85abaa] [--reps 3] [--profile] [--docs random]

Document vectors are cached in /tmp (by text), so only the first run embeds the 10k turns
(~20 min on a loaded 2-core machine); `--docs random` skips that: what a scan costs does not
depend on what the vectors say. They are handed to the recallers as if loaded from the vector
index (Chroma writes would take minutes, and a loaded recaller never reads Chroma again).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from app.llm.worker import MLXWorker  # noqa: E402
from benchmarks.cross_session import locomo, pick_questions, scale_sessions  # noqa: E402
from memory.embedder_choice import DEFAULT_EMBEDDER, make_embedder  # noqa: E402
from memory.recall import HybridRecaller  # noqa: E402
from memory.types import ScopeSession, SessionInfo, StoredMessage  # noqa: E402
from memory.vector_index import VectorIndex  # noqa: E402

LIMIT = 200  # recall_k of the vector strategies (memory/strategies/vector.py)
RECENT = 8  # turns of the asking session's recent buffer (excluded from recall)


class Embedder:
    """The real embedder, documents cached on disk by text; queries precomputed once asked
    when `stub` is set (then recall pays no embedding)."""

    def __init__(self, inner: Any, cache: Path) -> None:
        self.inner, self.name, self.dim, self.path = inner, inner.name, inner.dim, cache
        self.docs: dict[str, np.ndarray] = {}
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                self.docs = dict(zip(z["texts"].tolist(), z["vectors"], strict=True))
        self.queries: dict[str, list[float]] = {}
        self.stub = False

    def save(self) -> None:
        texts = list(self.docs)
        if not texts:
            return
        np.savez(self.path, texts=np.array(texts), vectors=np.stack([self.docs[t] for t in texts]))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        new = [t for t in dict.fromkeys(texts) if t not in self.docs]
        for i in range(0, len(new), 256):
            part = new[i : i + 256]
            self.docs.update(zip(part, np.asarray(await self.inner.embed(part)), strict=True))
            if i % 2048 == 0:
                self.save()  # a run killed while embedding keeps what it embedded
        return [self.docs[t].tolist() for t in texts]

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        if self.stub:
            return [self.queries[t] for t in texts]
        out = await self.inner.embed_query(texts)
        self.queries.update(zip(texts, out, strict=True))
        return out


def messages(sessions: list[list[dict[str, Any]]]) -> list[list[StoredMessage]]:
    out, next_id = [], 1
    for s in sessions:
        msgs = []
        for m in s:
            at = datetime.fromisoformat(m["created_at"])
            msgs.append(
                StoredMessage(
                    id=next_id, role=m["role"], content=m["content"], tokens=1, created_at=at
                )
            )
            next_id += 1
        out.append(msgs)
    return out


def baseline_module(rev: str) -> ModuleType:
    """memory/recall.py (with the bm25 and ranking it imports) as of `rev`, as its own modules."""
    out = Path(tempfile.mkdtemp(prefix="recall-base-"))
    for name in ("bm25", "ranking", "recall"):
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:memory/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for dep in ("bm25", "ranking"):
            src = src.replace(f"from memory.{dep} import", f"from base_{dep} import")
        (out / f"base_{name}.py").write_text(src)
    sys.path.insert(0, str(out))
    module = None
    for name in ("bm25", "ranking", "recall"):
        spec = importlib.util.spec_from_file_location(f"base_{name}", out / f"base_{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    assert module is not None
    return module


class Layout:
    def __init__(
        self,
        label: str,
        recaller: Any,
        ask: SessionInfo,
        history: list[StoredMessage],
        scope: list[ScopeSession],
    ) -> None:
        self.label, self.recaller, self.ask, self.history, self.scope = (
            label,
            recaller,
            ask,
            history,
            scope,
        )
        self.exclude = {m.id for m in history[-RECENT:]}
        self.ms: dict[str, list[float]] = {"full": [], "rest": []}
        self.ranked: dict[str, list[int]] = {}

    async def run(self, q: str) -> tuple[float, list[int]]:
        t0 = time.perf_counter()
        ranked = await self.recaller.recall(
            self.ask, q, self.history, self.exclude, LIMIT, self.scope
        )
        return (time.perf_counter() - t0) * 1000, ranked


def pct(xs: Sequence[float], p: float) -> float:
    return float(np.percentile(xs, p))


async def main_async(args: argparse.Namespace) -> None:
    convs = locomo().load_locomo(locomo().DEFAULT_DATA)
    sessions = messages(scale_sessions(convs, args.sessions, args.turns))
    questions = pick_questions(convs, args.questions + 3)
    worker = MLXWorker(name="mlx-recall-profile")
    inner = make_embedder(DEFAULT_EMBEDDER, worker)
    emb = Embedder(inner, Path(tempfile.gettempdir()) / f"recall-profile-{DEFAULT_EMBEDDER}.npz")
    tmp = tempfile.TemporaryDirectory(prefix="recall-profile-")
    index = VectorIndex.open(Path(tmp.name), None, emb)
    infos = [SessionInfo(id=f"s{i}", user_id="u", persona_id="p") for i in range(len(sessions))]
    one = SessionInfo(id="one", user_id="u1", persona_id="p")
    everything = [m for s in sessions for m in s]
    t0 = time.perf_counter()
    rec = HybridRecaller(index)
    docs = [rec.document(m) for m in everything]
    if args.docs == "random":  # scan costs do not depend on what the vectors say
        vecs = np.random.default_rng(0).standard_normal((len(docs), emb.dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    else:
        vecs = np.asarray(await emb.embed(docs), dtype=np.float32)
        emb.save()
    print(f"{len(docs)} document vectors in {time.perf_counter() - t0:.0f}s", flush=True)
    # The states are given the vectors as if loaded from the vector index (no Chroma writes:
    # they would take minutes and recall never reads Chroma once loaded); the first recall
    # then builds BM25 and adopts them, as after a restart.
    start = 0
    for info, msgs in [*zip(infos, sessions, strict=True), (one, everything)]:
        n = len(msgs)
        part = slice(start, start + n) if info is not one else slice(0, n)
        rec._adopt_loaded(rec._state(info), [m.id for m in msgs], docs[part], vecs[part])
        start += n if info is not one else 0

    asker = SessionInfo(id="new", user_id="u", persona_id="p")
    scope = [ScopeSession(session=i, history=s) for i, s in zip(infos, sessions, strict=True)]
    kinds: list[tuple[str, Any]] = [("now", HybridRecaller)]
    if args.baseline:
        kinds.insert(0, ("before", baseline_module(args.baseline).HybridRecaller))
    layouts = []
    for kind, cls in kinds:
        r = rec if kind == "now" else cls(index)
        if r is not rec:  # the same vectors, handed over the same way
            for key, st in rec._sessions.items():
                info = SessionInfo(id=key[1], user_id=key[0], persona_id="p")
                assert st.dense is not None
                n = len(st.dense.ids)
                docs_of = dict(st.stored_docs)
                r._adopt_loaded(
                    r._state(info),
                    st.dense.ids[:],
                    [docs_of[i] for i in st.dense.ids],
                    st.dense.mat[:n].copy(),
                )
        layouts.append(Layout(f"{kind} 100x100", r, asker, [], scope))
        layouts.append(Layout(f"{kind} 1x10k", r, one, everything, []))
    for lay in layouts:  # warm-up: loads, BM25 built, code paths hot
        for q in questions[:3]:
            await lay.run(q)
    # one profile per layout, of the stub-embedded recalls (the embedding is its own thread)
    profs = {lay.label: cProfile.Profile() for lay in layouts} if args.profile else {}
    for rep in range(args.reps):
        for q in questions[3:]:
            for lay in layouts:
                for mode in ("full", "rest"):
                    emb.stub = mode == "rest"
                    prof = profs.get(lay.label) if mode == "rest" and rep == 0 else None
                    if prof:
                        prof.enable()
                    ms, ranked = await lay.run(q)
                    if prof:
                        prof.disable()
                    lay.ms[mode].append(ms)
                    if lay.ranked.setdefault(q, ranked) != ranked:
                        raise SystemExit(f"{lay.label}: '{q}' ranked differently across runs")
    emb.stub = False
    print(f"\n{len(questions) - 3} questions x {args.reps} reps, limit {LIMIT}, ms")
    print(f"{'layout':<16} {'full p50':>9} {'p95':>7} {'rest p50':>9} {'p95':>7}")
    for lay in layouts:
        f, r = lay.ms["full"], lay.ms["rest"]
        print(
            f"{lay.label:<16} {pct(f, 50):9.1f} {pct(f, 95):7.1f} {pct(r, 50):9.1f} "
            f"{pct(r, 95):7.1f}"
        )
    by = {lay.label: lay for lay in layouts}
    print("\nratios (p50 / p95)")
    for kind, _ in kinds:
        many, single = by[f"{kind} 100x100"], by[f"{kind} 1x10k"]
        for mode in ("full", "rest"):
            a, b = many.ms[mode], single.ms[mode]
            print(
                f"{kind} 100x100 / 1x10k {mode}: {pct(a, 50) / pct(b, 50):.2f} / "
                f"{pct(a, 95) / pct(b, 95):.2f}"
            )
    if args.baseline:
        for lay in ("100x100", "1x10k"):
            now, before = by[f"now {lay}"], by[f"before {lay}"]
            if now.ranked != before.ranked:
                print(f"!! {lay}: rankings differ from the baseline")
            for mode in ("full", "rest"):
                a, b = now.ms[mode], before.ms[mode]
                print(
                    f"now / before {lay} {mode}: {pct(a, 50) / pct(b, 50):.2f} / "
                    f"{pct(a, 95) / pct(b, 95):.2f}"
                )
    for label, prof in profs.items():
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.profile_rows)
        print(f"== {label}\n{s.getvalue()}")
    worker.shutdown()
    tmp.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--baseline", default="", help="git revision of the recall code to compare")
    ap.add_argument("--docs", choices=("real", "random"), default="real", help="document vectors")
    ap.add_argument("--profile", action="store_true", help="cProfile each layout's recalls")
    ap.add_argument("--profile-rows", type=int, default=20)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
