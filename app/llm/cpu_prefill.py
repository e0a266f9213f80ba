"""The numpy prefill path of `CPUFastModel`: multi-token llama chunks as GEMMs.

Why (measured on a 2-core x86 CPU with SmolLM2-135M, see the README "Engine" benchmark): MLX's
CPU attention is unfused and slow at a large KV offset (a 24-token chunk after 1.5k cached tokens
ran at ~70 tok/s, a third of a cold prefill's speed), and each of its ~20 ops per layer pays
MLX's per-op overhead. Here a chunk of T new tokens runs as a handful of OpenBLAS GEMMs per layer
on the fused q|k|v and gate|up matrices `NumpyDecoder` already holds, attention as one GEMM per KV
head group over the cached keys (the causal mask only touches the chunk's own T columns), and
K/V are written in place into the same MLX `KVCache` buffers the decode path and MLX use.

The GEMMs (`gemm`, app/llm/cpu_kernels.py) run app/llm/gemm.c, or `cblas_sgemm` of the OpenBLAS
MLX uses (not numpy's bundled one: two BLAS thread pools on two cores fight each other, see
app/llm/cpu_decode.py).
"""

from __future__ import annotations

from app.blas import load_blas

load_blas()  # before mlx

import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm.attend_native import SOFTMAX  # noqa: E402
from app.llm.cpu_decode import NumpyDecoder  # noqa: E402
from app.llm.cpu_kernels import (  # noqa: E402
    Layer,
    gemm,
    kv_views,
    lin_rows,
    mlp_rows,
    rms_rows,
    rope_angles,
    rope_rows,
)

_QUERY_BLOCK = 64


class NumpyPrefiller:
    """Multi-token forward pass of a llama.Model in numpy, sharing `NumpyDecoder`'s weights."""

    def __init__(self, decoder: NumpyDecoder) -> None:
        self.dec = decoder

    def hidden(self, tokens: np.ndarray, cache: list[KVCache]) -> np.ndarray:
        """Run `tokens` (1-D ids) through every layer, filling `cache`; the last hidden states
        (T, hidden), before the final norm."""
        h = self.dec.embedding(tokens)
        pos = cache[0].offset
        cos, sin = rope_angles(self.dec.rope, np.arange(pos, pos + len(tokens), dtype=np.float32))
        causal = causal_mask(len(tokens))
        for layer, c in zip(self.dec.layers, cache, strict=True):
            h = self._layer(layer, h, c, cos, sin, causal)
        return h

    def _layer(
        self,
        ly: Layer,
        x: np.ndarray,
        c: KVCache,
        cos: np.ndarray,
        sin: np.ndarray,
        causal: np.ndarray,
    ) -> np.ndarray:
        t, d, kvh = x.shape[0], ly.head_dim, ly.n_kv
        qkv = lin_rows(ly.wqkv, ly.bqkv, rms_rows(x, ly.attn_norm, ly.attn_eps))
        qk = rope_rows(self.dec.rope, qkv[:, : ly.k_end].reshape(t, ly.n_heads + kvh, d), cos, sin)
        attn = attend_chunk(ly, c, qk, qkv[:, ly.k_end :].reshape(t, kvh, d), causal)
        return mlp_rows(ly, x, attn)


def causal_mask(t: int) -> np.ndarray:
    """(T, T): -inf above the diagonal, where a chunk's query would see a later token."""
    return np.triu(np.full((t, t), -np.inf, dtype=np.float32), k=1)


def attend_chunk(
    ly: Layer, c: KVCache, qk: np.ndarray, v: np.ndarray, causal: np.ndarray
) -> np.ndarray:
    """Write a chunk's keys and values at `c.offset` and attend its queries over the cache.

    `qk` is (T, heads + kv heads, head_dim) after RoPE (queries, then keys), `v` (T, kv heads,
    head_dim); `causal` is `causal_mask(T)`. The cache's offset moves T on. (T, heads * d).
    """
    t, pos = qk.shape[0], c.offset
    kv, vv = kv_views(c, ly.n_kv, ly.head_dim, t)
    kv[0, :, pos : pos + t, :] = qk[:, ly.n_heads :].transpose(1, 0, 2)
    vv[0, :, pos : pos + t, :] = v.transpose(1, 0, 2)
    c.offset = pos + t
    return _attention(ly, qk[:, : ly.n_heads], kv[0], vv[0], pos, causal)


def _attention(
    ly: Layer,
    q: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    pos: int,
    causal: np.ndarray,
) -> np.ndarray:
    """Causal attention of the chunk's queries q (T, heads, d) over keys/values (kv heads,
    capacity, d) already holding the chunk at [pos, pos + T); (T, heads * d)."""
    t, d, kvh = q.shape[0], ly.head_dim, ly.n_kv
    rep = ly.n_heads // kvh
    # (kv head, T, rep, d): a block of queries of one KV head is one GEMM operand, row
    # i * rep + r being query i of the r-th head sharing that KV head.
    qg = np.ascontiguousarray(
        (q * np.float32(ly.scale)).reshape(t, kvh, rep, d).transpose(1, 0, 2, 3)
    )
    out = np.empty((t, kvh, rep, d), dtype=np.float32)
    # Query blocks: each sees keys only up to its last query (the causal part of the chunk
    # beyond is never computed) and its scores stay small enough for the CPU caches.
    for i0 in range(0, t, _QUERY_BLOCK):
        i1 = min(t, i0 + _QUERY_BLOCK)
        n = pos + i1
        # Keys before the block's first query are visible to all of its queries.
        mask = causal[i0:i1, None, i0:i1]  # for the numpy softmax
        for g in range(kvh):
            scores = gemm(qg[g, i0:i1].reshape(-1, d), keys[g, :n], trans_b=True)
            total = _softmax(scores, rep, pos + i0, mask)
            o = gemm(scores, values[g, :n], trans_b=False)
            o /= total
            out[i0:i1, g] = o.reshape(i1 - i0, rep, d)
    return out.reshape(t, ly.n_heads * d)


def _softmax(scores: np.ndarray, rep: int, first: int, mask: np.ndarray) -> np.ndarray:
    """Causal softmax weights of a query block's `scores` (rows x keys, `rep` rows per query) in
    place, unnormalized; their sums per row, (rows, 1). Row r's query sees keys up to
    `first` + r // rep; `mask` is the block's part of causal_mask from column `first` on.
    attend.c's kernel (threaded, one pass per row) where built, else numpy."""
    rows, n = scores.shape
    total = np.empty((rows, 1), dtype=np.float32)
    if SOFTMAX is not None and scores.flags.c_contiguous:
        SOFTMAX(rows, n, scores.ctypes.data, n, rep, first + 1, total.ctypes.data)
        return total
    scores.reshape(-1, rep, n)[:, :, first:] += mask
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    np.sum(scores, axis=1, keepdims=True, out=total)
    return total
