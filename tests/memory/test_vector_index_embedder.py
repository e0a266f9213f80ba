"""The embedder's identity travels with the vectors: real Chroma, real MiniLM and real E5.

Both models give 384 dimensions, so only the stored name tells their vectors apart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from app.llm.worker import MLXWorker
from memory.e5 import E5Embedder
from memory.embeddings import MLXEmbedder
from memory.types import SessionInfo
from memory.vector_index import (
    COLLECTION,
    DIM_KEY,
    EMBEDDER_KEY,
    LEGACY_EMBEDDER,
    EmbedderMismatch,
    IndexRecord,
    VectorIndex,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DAD = SessionInfo(id="s-dad", user_id="dad", persona_id="pippa")
TEXTS = ["우리 강아지 이름은 콩이야", "오늘 회사에서 힘들었어", "We named the kitten Mochi."]


@pytest.fixture(scope="module")
def minilm(mlx_worker: MLXWorker) -> Iterator[MLXEmbedder]:
    yield MLXEmbedder(mlx_worker)


@pytest.fixture(scope="module")
def e5(mlx_worker: MLXWorker) -> Iterator[E5Embedder]:
    yield E5Embedder(mlx_worker)


def records() -> list[IndexRecord]:
    return [IndexRecord(i + 1, "user", t, T0) for i, t in enumerate(TEXTS)]


async def test_a_new_index_names_its_embedder(tmp_path: Path, e5: E5Embedder) -> None:
    index = VectorIndex.open(tmp_path, None, e5)
    meta = index.collection.metadata
    assert (meta[EMBEDDER_KEY], meta[DIM_KEY]) == (e5.name, 384)
    await index.upsert(DAD, records())
    assert index.stored_embedder() == (e5.name, 384)
    # reopened with the same embedder: fine, and the cosine space is kept
    again = VectorIndex.open(tmp_path, None, e5)
    assert await again.count(DAD) == 3
    assert again.collection.configuration_json["hnsw"]["space"] == "cosine"


async def test_another_embedder_is_refused_with_what_to_do(
    tmp_path: Path, e5: E5Embedder, minilm: MLXEmbedder
) -> None:
    index = VectorIndex.open(tmp_path, None, minilm)
    await index.upsert(DAD, records())
    with pytest.raises(EmbedderMismatch) as err:
        VectorIndex.open(tmp_path, None, e5)
    msg = str(err.value)
    assert "memento reindex" in msg and minilm.name in msg and e5.name in msg
    assert err.value.stored == (minilm.name, 384) and err.value.configured == (e5.name, 384)
    # nothing was written by the refused open
    assert VectorIndex.open(tmp_path, None, minilm).stored_embedder() == (minilm.name, 384)


async def test_an_index_from_before_names_is_minilms(
    tmp_path: Path, e5: E5Embedder, minilm: MLXEmbedder
) -> None:
    # what a release before issue 11 left: a cosine collection with MiniLM vectors, no name
    client = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    old = client.get_or_create_collection(
        COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
    )
    vectors = await minilm.embed(TEXTS)
    old.upsert(
        ids=[f"{DAD.id}:{i + 1}" for i in range(3)],
        embeddings=vectors,
        documents=TEXTS,
        metadatas=[
            {"user_id": "dad", "persona_id": "pippa", "session_id": DAD.id, "message_id": i + 1}
            for i in range(3)
        ],
    )
    with pytest.raises(EmbedderMismatch) as err:
        VectorIndex.open(tmp_path, None, e5)
    assert err.value.stored == LEGACY_EMBEDDER == (minilm.name, 384)
    index = VectorIndex.open(tmp_path, None, minilm)  # MiniLM adopts it and names it
    assert index.collection.metadata[EMBEDDER_KEY] == minilm.name
    assert await index.count(DAD) == 3


async def test_an_empty_index_goes_to_whichever_embedder_opens_it(
    tmp_path: Path, e5: E5Embedder, minilm: MLXEmbedder
) -> None:
    VectorIndex.open(tmp_path, None, minilm)
    index = VectorIndex.open(tmp_path, None, e5)
    assert index.collection.metadata[EMBEDDER_KEY] == e5.name


async def test_reset_starts_over_with_the_new_embedder(
    tmp_path: Path, e5: E5Embedder, minilm: MLXEmbedder
) -> None:
    old = VectorIndex.open(tmp_path, None, minilm)
    await old.upsert(DAD, records())
    index = VectorIndex.open(tmp_path, None, e5, check_embedder=False)
    with pytest.raises(EmbedderMismatch):
        index.verify_embedder()
    await index.reset()
    assert index.stored_embedder() is None
    await index.upsert(DAD, records())
    assert index.stored_embedder() == (e5.name, 384)
    hits = await index.query(DAD, "강아지 이름이 뭐였지?", k=1)
    assert hits[0][0] == 1
    with pytest.raises(EmbedderMismatch):
        VectorIndex.open(tmp_path, None, minilm)
