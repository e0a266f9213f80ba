"""The numpy prefill path of `CPUFastModel`: multi-token llama chunks as cblas_sgemm GEMMs.

Why (measured on a 2-core x86 CPU with SmolLM2-135M, see the README "Engine" benchmark): MLX's
CPU attention is unfused and slow at a large KV offset (a 24-token chunk after 1.5k cached tokens
ran at ~70 tok/s, a third of a cold prefill's speed), and each of its ~20 ops per layer pays
MLX's per-op overhead. Here a chunk of T new tokens runs as a handful of OpenBLAS GEMMs per layer
on the fused q|k|v and gate|up matrices `NumpyDecoder` already holds, attention as one GEMM per KV
head group over the cached keys (the causal mask only touches the chunk's own T columns), and
K/V are written in place into the same MLX `KVCache` buffers the decode path and MLX use.

The GEMMs call `cblas_sgemm` of the OpenBLAS MLX uses (not numpy's bundled one: two BLAS thread
pools on two cores fight each other, see app/llm/cpu_decode.py).
"""

from __future__ import annotations

import ctypes
from typing import Any

from app.blas import load_blas

load_blas()  # before mlx, and before _find_sgemm looks for OpenBLAS in the global namespace

import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm.cpu_decode import NumpyDecoder, _Layer, _Rope, _views  # noqa: E402


def _find_sgemm() -> Any:
    try:
        fn = ctypes.CDLL(None).cblas_sgemm
    except (AttributeError, OSError):
        return None
    ptr, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    fn.argtypes = [i, i, i, i, i, i, f, ptr, i, ptr, i, f, ptr, i]
    fn.restype = None
    return fn


_SGEMM = _find_sgemm()
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_QUERY_BLOCK = 64


def _rows_ok(a: np.ndarray) -> bool:
    """A 2-D float32 matrix whose rows are contiguous (any row stride): what sgemm can read."""
    return a.ndim == 2 and a.dtype == np.float32 and a.strides[1] == 4 and a.strides[0] % 4 == 0


def gemm(a: np.ndarray, b: np.ndarray, trans_b: bool) -> np.ndarray:
    """a @ b.T (trans_b) or a @ b, for float32 matrices with contiguous rows."""
    m, k = a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    if _SGEMM is None:
        return np.ascontiguousarray(a @ (b.T if trans_b else b))
    if not _rows_ok(a):
        a = np.ascontiguousarray(a, dtype=np.float32)
    if not _rows_ok(b):
        b = np.ascontiguousarray(b, dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    _SGEMM(
        _ROW_MAJOR,
        _NO_TRANS,
        _TRANS if trans_b else _NO_TRANS,
        m,
        n,
        k,
        1.0,
        a.ctypes.data,
        a.strides[0] // 4,
        b.ctypes.data,
        b.strides[0] // 4,
        0.0,
        out.ctypes.data,
        n,
    )
    return out


def lin_rows(w: np.ndarray, b: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """x @ w.T (+ b): a linear layer over the rows of x."""
    y = gemm(x, w, trans_b=True)
    if b is not None:
        y += b
    return y


def rms_rows(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[1])
    return x * (1.0 / np.sqrt(ms + np.float32(eps)))[:, None] * w


def rope_angles(rope: _Rope, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (T, 1, dims/2) for the rows at `positions`."""
    theta = (positions * np.float32(rope.scale))[:, None] * rope.inv_freq[None, :]
    return np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]


def rope_rows(rope: _Rope, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate x (T, heads, head_dim), each row by the angles of its own position."""
    r = x[..., : rope.dims]
    if rope.traditional:  # GGUF layout: adjacent pairs
        a, b = r[..., 0::2], r[..., 1::2]
        out = np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(r.shape)
    else:  # Hugging Face layout: two halves
        half = rope.dims // 2
        a, b = r[..., :half], r[..., half:]
        out = np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    if rope.dims == x.shape[-1]:
        return out
    return np.concatenate([out, x[..., rope.dims :]], axis=-1)


class NumpyPrefiller:
    """Multi-token forward pass of a llama.Model in numpy, sharing `NumpyDecoder`'s weights."""

    def __init__(self, decoder: NumpyDecoder) -> None:
        self.dec = decoder

    def hidden(self, tokens: np.ndarray, cache: list[KVCache]) -> np.ndarray:
        """Run `tokens` (1-D ids) through every layer, filling `cache`; the last hidden states
        (T, hidden), before the final norm."""
        h = self.dec.embed[tokens]
        pos = cache[0].offset
        cos, sin = rope_angles(self.dec.rope, np.arange(pos, pos + len(tokens), dtype=np.float32))
        causal = np.triu(np.full((len(tokens),) * 2, -np.inf, dtype=np.float32), k=1)
        for layer, c in zip(self.dec.layers, cache, strict=True):
            h = self._layer(layer, h, c, pos, cos, sin, causal)
        return h

    def _layer(
        self,
        ly: _Layer,
        x: np.ndarray,
        c: KVCache,
        pos: int,
        cos: np.ndarray,
        sin: np.ndarray,
        causal: np.ndarray,
    ) -> np.ndarray:
        t, d, kvh = x.shape[0], ly.head_dim, ly.n_kv
        qkv = lin_rows(ly.wqkv, ly.bqkv, rms_rows(x, ly.attn_norm, ly.attn_eps))
        qk = rope_rows(self.dec.rope, qkv[:, : ly.k_end].reshape(t, ly.n_heads + kvh, d), cos, sin)
        kv, vv = _views(c, kvh, d, t)
        kv[0, :, pos : pos + t, :] = qk[:, ly.n_heads :].transpose(1, 0, 2)
        vv[0, :, pos : pos + t, :] = qkv[:, ly.k_end :].reshape(t, kvh, d).transpose(1, 0, 2)
        c.offset = pos + t
        attn = self._attention(ly, qk[:, : ly.n_heads], kv[0], vv[0], pos, causal)
        h = x + lin_rows(ly.wo, ly.bo, attn)
        gu = lin_rows(ly.wgu, ly.bgu, rms_rows(h, ly.ffn_norm, ly.ffn_eps))
        g_, u = gu[:, : ly.hidden], gu[:, ly.hidden :]
        # g / (1 + exp(-g)) * u as the decode step computes it, in one buffer: T x hidden
        # temporaries cost more than the exp at prompt sizes.
        act = np.negative(g_)
        np.exp(act, out=act)
        act += 1.0
        np.divide(g_, act, out=act)
        act *= u
        return h + lin_rows(ly.wd, ly.bd, act)

    @staticmethod
    def _attention(
        ly: _Layer,
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
            mask = causal[i0:i1, None, i0:i1]
            for g in range(kvh):
                scores = gemm(qg[g, i0:i1].reshape(-1, d), keys[g, :n], trans_b=True)
                scores.reshape(i1 - i0, rep, n)[:, :, pos + i0 :] += mask
                scores -= scores.max(axis=1, keepdims=True)
                np.exp(scores, out=scores)
                total = scores.sum(axis=1, keepdims=True)
                o = gemm(scores, values[g, :n], trans_b=False)
                o /= total
                out[i0:i1, g] = o.reshape(i1 - i0, rep, d)
        return out.reshape(t, ly.n_heads * d)
