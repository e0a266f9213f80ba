"""The vector index on a real embedded Chroma with real MiniLM embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import heap
from app.llm.worker import MLXWorker
from memory import vector_index
from memory.embeddings import MLXEmbedder
from memory.types import SessionInfo
from memory.vector_index import IndexRecord, VectorIndex

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE = SessionInfo(id="s-alice", user_id="alice", persona_id="daughter")
BOB = SessionInfo(id="s-bob", user_id="bob", persona_id="daughter")

TEXTS = [
    "My sister lives in Busan and works as a nurse.",
    "I bought a red bicycle for my commute.",
    "We adopted a golden retriever puppy called Max.",
    "The quarterly report is due on Friday.",
]


@pytest.fixture(scope="module")
def embedder(mlx_worker: MLXWorker) -> Iterator[MLXEmbedder]:
    yield MLXEmbedder(mlx_worker)


def records(texts: list[str], first_id: int = 1) -> list[IndexRecord]:
    return [
        IndexRecord(first_id + i, "user" if i % 2 == 0 else "assistant", t, T0)
        for i, t in enumerate(texts)
    ]


async def test_query_ranks_the_related_turn_first(tmp_path: Path, embedder: MLXEmbedder) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS))
    assert await index.count(ALICE) == 4
    hits = await index.query(ALICE, "what kind of dog do we have?", k=2)
    assert hits[0][0] == 3
    assert len(hits) == 2 and hits[0][1] < hits[1][1]
    # The default cosine distance: identical text is at ~0.
    exact = await index.query(ALICE, TEXTS[1], k=1)
    assert exact[0][0] == 2 and exact[0][1] < 1e-4


async def test_metadata_carries_every_id(tmp_path: Path, embedder: MLXEmbedder) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS[:1], first_id=7))
    got = index.collection.get(ids=["s-alice:7"], include=["metadatas", "documents"])
    meta = got["metadatas"][0]
    assert meta == {
        "user_id": "alice",
        "persona_id": "daughter",
        "session_id": "s-alice",
        "message_id": 7,
        "role": "user",
        "created_at": T0.timestamp(),
    }
    assert got["documents"] == [TEXTS[0]]


async def test_users_are_isolated_even_for_identical_text(
    tmp_path: Path, embedder: MLXEmbedder
) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS))
    await index.upsert(BOB, records(["We adopted a golden retriever puppy called Max."], 100))
    bob_hits = await index.query(BOB, TEXTS[2], k=10)
    assert bob_hits == [(100, pytest.approx(0.0, abs=1e-4))]
    alice_hits = await index.query(ALICE, TEXTS[2], k=10)
    assert {i for i, _ in alice_hits} == {1, 2, 3, 4}
    # Same session id, another user: still nothing of Alice's.
    mallory = SessionInfo(id="s-alice", user_id="mallory", persona_id="daughter")
    assert await index.query(mallory, TEXTS[2], k=10) == []
    await index.delete(mallory)  # deleting "the session" as another user removes nothing
    assert await index.count(ALICE) == 4


async def test_delete_some_and_all(tmp_path: Path, embedder: MLXEmbedder) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS))
    await index.upsert(BOB, records(TEXTS[:2]))
    await index.delete(ALICE, [1, 3])
    assert await index.ids(ALICE) == {2, 4}
    await index.delete(ALICE)
    assert await index.count(ALICE) == 0
    assert await index.count(BOB) == 2


async def test_upsert_replaces_an_edited_turn(tmp_path: Path, embedder: MLXEmbedder) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS))
    await index.upsert(ALICE, [IndexRecord(2, "assistant", "I sold my bicycle; I walk now.", T0)])
    assert await index.count(ALICE) == 4
    doc = index.collection.get(ids=["s-alice:2"], include=["documents"])["documents"]
    assert doc == ["I sold my bicycle; I walk now."]


async def test_batches_larger_than_the_upsert_batch(tmp_path: Path, embedder: MLXEmbedder) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    index.max_batch = 7  # force several chunks
    texts = [f"note number {i} about topic {i % 5}" for i in range(30)]
    emb = embedder.encode_sync(texts)
    await index.upsert(ALICE, records(texts), embeddings=emb)
    assert await index.ids(ALICE) == set(range(1, 31))
    await index.delete(ALICE, list(range(1, 20)))
    assert await index.ids(ALICE) == set(range(20, 31))


async def test_persists_across_reopening(tmp_path: Path, embedder: MLXEmbedder) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS))
    del index
    reopened = VectorIndex.open(tmp_path, None, embedder)
    assert await reopened.count(ALICE) == 4
    assert (await reopened.query(ALICE, "puppy", k=1))[0][0] == 3
    assert (tmp_path / "chroma").is_dir()


async def test_bad_arguments_are_named(tmp_path: Path, embedder: MLXEmbedder) -> None:
    with pytest.raises(ValueError, match="data_dir or a chroma url"):
        VectorIndex.open(None, None, embedder)
    with pytest.raises(ValueError, match="chroma url"):
        VectorIndex.open(None, "localhost:8000", embedder)
    index = VectorIndex.open(tmp_path, None, embedder)
    with pytest.raises(ValueError, match="k must be"):
        await index.query(ALICE, "x", k=0)
    with pytest.raises(ValueError, match="non-empty text"):
        await index.query(ALICE, "", k=1)
    with pytest.raises(ValueError, match="session.user_id"):
        await index.query(SessionInfo(id="s", user_id="", persona_id="p"), "x", k=1)
    with pytest.raises(ValueError, match="2 embeddings for 1 records"):
        await index.upsert(ALICE, records(["a"]), embeddings=[[0.0] * 384] * 2)


async def test_load_sessions_reads_several_sessions_of_one_user_only(
    tmp_path: Path, embedder: MLXEmbedder
) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    alice2 = SessionInfo(id="s-alice-2", user_id="alice", persona_id="daughter")
    await index.upsert(ALICE, records(TEXTS[:2]))
    await index.upsert(alice2, records(TEXTS[2:], first_id=10))
    await index.upsert(BOB, records(TEXTS[:1], first_id=20))
    # Bob's session named under Alice's user id yields nothing: the user filter holds
    disguised = SessionInfo(id=BOB.id, user_id="alice", persona_id="daughter")
    got = await index.load_sessions([ALICE, alice2, disguised])
    assert sorted(got[ALICE.id][0]) == [1, 2] and sorted(got[alice2.id][0]) == [10, 11]
    assert got[BOB.id][0] == [] and got[BOB.id][2].shape == (0, embedder.dim)
    ids, docs, vectors = got[alice2.id]
    single = await index.load(alice2)
    assert dict(zip(ids, docs, strict=True)) == dict(zip(single[0], single[1], strict=True))
    assert vectors.shape == (2, embedder.dim)
    with pytest.raises(ValueError, match="one user"):
        await index.load_sessions([ALICE, BOB])


async def test_a_large_vector_read_trims_the_heap(
    tmp_path: Path, embedder: MLXEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a large read freed in its worker thread's arena goes back to the OS as it ends
    # (app/heap.py); smaller reads leave it to the trimmer's minute
    trims: list[int] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(1) or True)
    monkeypatch.setattr(vector_index, "TRIM_AFTER_ROWS", 3)
    index = VectorIndex.open(tmp_path, None, embedder)
    await index.upsert(ALICE, records(TEXTS))
    alice2 = SessionInfo(id="s-alice-2", user_id="alice", persona_id="daughter")
    await index.upsert(alice2, records(TEXTS[:1], 50))
    await index.load(alice2)
    await index.load(ALICE, [1, 2])
    await index.load_sessions([alice2])
    assert trims == []
    await index.load(ALICE)
    assert len(trims) == 1
    await index.load_sessions([ALICE, alice2])
    assert len(trims) == 2
