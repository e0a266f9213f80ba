"""MiniLM in MLX: checked against an independent numpy forward pass and known similarities."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from app.llm.worker import MLXWorker
from memory.embeddings import MAX_TOKENS, MLXEmbedder, model_dir


@pytest.fixture(scope="session")
def embedder(mlx_worker: MLXWorker) -> Iterator[MLXEmbedder]:
    emb = MLXEmbedder(mlx_worker)
    emb.load()
    yield emb


def _reference(texts: list[str]) -> np.ndarray:
    """BERT + mean pooling + L2 norm written out in float64 numpy, one text at a time."""
    raw = load_file(str(model_dir() / "model.safetensors"))
    w = {k: v.astype(np.float64) for k, v in raw.items()}
    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    erf = np.vectorize(math.erf)

    def ln(x: np.ndarray, name: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[f"{name}.weight"] + w[f"{name}.bias"]

    def lin(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    out = []
    for text in texts:
        ids = np.array(tok.encode(text).ids)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = ln(x, "embeddings.LayerNorm")
        for i in range(6):
            p = f"encoder.layer.{i}"
            q, k, v = (
                lin(x, f"{p}.attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            s = q @ k.transpose(0, 2, 1) / math.sqrt(32)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, 384)
            x = ln(x + lin(a, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            h = lin(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
            x = ln(x + lin(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        m = x.mean(0)
        out.append(m / np.linalg.norm(m))
    return np.stack(out)


def test_matches_an_independent_numpy_forward_pass(embedder: MLXEmbedder) -> None:
    texts = ["A man is eating food.", "Hi", "The weather in Seoul was cold on 8 May, 2023."]
    got = embedder.encode_sync(texts)
    np.testing.assert_allclose(got, _reference(texts), atol=2e-5)


def test_shape_dtype_and_unit_norm(embedder: MLXEmbedder) -> None:
    texts = ["one", "a somewhat longer sentence about a dog in the park", "three"]
    v = embedder.encode_sync(texts)
    assert v.shape == (3, embedder.dim) == (3, 384)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


async def test_async_embed_and_batching_keep_order(embedder: MLXEmbedder) -> None:
    # Lengths vary so the length-sorted batches reorder internally; results must not.
    texts = [("word " * n).strip() + f" {n}" for n in (30, 1, 12, 5, 60, 2, 25, 8)] * 5
    together = np.array(await embedder.embed(texts), dtype=np.float32)
    alone = np.stack([embedder.encode_sync([t])[0] for t in texts[:8]])
    np.testing.assert_allclose(together[:8], alone, atol=1e-5)
    np.testing.assert_allclose(together[:8], together[8:16], atol=1e-6)


def test_identical_texts_give_identical_embeddings(embedder: MLXEmbedder) -> None:
    text = "I adopted a puppy named Max."
    v = embedder.encode_sync([text, "other", text])
    # Not bitwise: BLAS blocks rows by position, so the float sums may round differently.
    np.testing.assert_allclose(v[0], v[2], atol=1e-6)


def test_related_sentences_score_clearly_above_unrelated(embedder: MLXEmbedder) -> None:
    pairs = [
        (
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ),
        (
            "A monkey is playing drums.",
            "Someone in a gorilla costume is playing drums.",
            "A man is riding a horse.",
        ),
        (
            "I adopted a puppy last week.",
            "We got a new dog recently.",
            "The stock market fell sharply today.",
        ),
        (
            "Where did you go on vacation?",
            "We spent our holidays in Spain.",
            "My car needs new tyres.",
        ),
    ]
    for anchor, related, unrelated in pairs:
        a, r, u = embedder.encode_sync([anchor, related, unrelated])
        assert float(a @ r) > float(a @ u) + 0.25, (anchor, float(a @ r), float(a @ u))


def test_long_text_is_truncated_not_rejected(embedder: MLXEmbedder) -> None:
    long = "memory " * 2000
    v = embedder.encode_sync([long, long[: len(long) // 2]])
    assert np.isclose(np.linalg.norm(v[0]), 1.0, atol=1e-5)
    # Both exceed MAX_TOKENS, so both become the same truncated input.
    assert MAX_TOKENS == 256
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)


async def test_empty_and_bad_input(embedder: MLXEmbedder) -> None:
    assert (await embedder.embed([])) == []
    with pytest.raises(TypeError, match="text #1 is int"):
        embedder.encode_sync(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of texts"):
        embedder.encode_sync("just a string")  # type: ignore[arg-type]
