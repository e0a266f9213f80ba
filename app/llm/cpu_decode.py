"""The numpy decode path of `CPUFastModel`: single-token llama steps as GEMVs (app/llm/gemm.c's
one-row path where `make setup` built it, else cblas_sgemv).

Why (measured on a 2-core x86 CPU with SmolLM2-135M, see app/llm/cpu_fast.py): a decode step is
200+ matrix-VECTOR products, and MLX always calls `cblas_sgemm`; Debian's OpenBLAS 0.3.21 packs
the whole weight matrix for an M=1 GEMM and reads weights at ~6 GB/s, while `cblas_sgemv` (what
numpy's `matrix @ vector` calls) streams them at ~17 GB/s. On top of that every `mx.eval` costs
~0.1 ms and every MLX op ~10 us on this backend. So single-token steps on a plain `KVCache` run
here (`NumpyDecoder`): fused q|k|v and gate|up matrices (fewer, larger GEMVs) stored as (in,
out) and read by the transposed GEMV (cpu_kernels.in_out says why), the KV cache written in
place through zero-copy numpy views of the cache's MLX buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

from app.blas import load_blas

load_blas()  # before mlx, and before _find_sgemv looks for OpenBLAS in the global namespace

import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models import llama  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm import gemm_native  # noqa: E402
from app.llm.cpu_kernels import (  # noqa: E402
    FusedWeights,
    Layer,
    Rope,
    attend_decoded,
    f32_view,
    in_out,
    lin_rows,
    native_gemm_serves,
    opt_bias,
)


def _rms(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x * (1.0 / np.sqrt(np.dot(x, x) / x.shape[0] + eps)) * w


def _find_sgemv() -> Any:
    """`cblas_sgemv` of the BLAS MLX uses (load_blas put OpenBLAS in the global namespace).

    numpy's own bundled OpenBLAS would work too, but then two BLAS thread pools spin against
    each other on two cores: measured 2-3x slower than sharing MLX's pool.
    """
    try:
        fn = ctypes.CDLL(None).cblas_sgemv
    except (AttributeError, OSError):
        return None
    ptr, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    fn.argtypes = [i, i, i, i, f, ptr, i, ptr, i, f, ptr, i]
    fn.restype = None
    return fn


_SGEMV = _find_sgemv()


def gemv_library() -> str:
    """Which library serves the decode GEMVs, for the startup log."""
    if native_gemm_serves(gemm_native.LANES):
        return gemm_native.description()
    if _SGEMV is None:
        return "numpy"

    class _DlInfo(ctypes.Structure):
        _fields_ = [
            ("fname", ctypes.c_char_p),
            ("fbase", ctypes.c_void_p),
            ("sname", ctypes.c_char_p),
            ("saddr", ctypes.c_void_p),
        ]

    info = _DlInfo()
    with contextlib.suppress(OSError, AttributeError):
        if ctypes.CDLL(None).dladdr(ctypes.cast(_SGEMV, ctypes.c_void_p), ctypes.byref(info)):
            return f"cblas_sgemv from {(info.fname or b'?').decode()}"
    return "cblas_sgemv"


_ROW_MAJOR, _TRANS = 101, 112


def _lin(w: np.ndarray, b: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """x @ w (+ b) for a vector and a row-contiguous float32 (in, out) matrix: the many-row
    kernel's one-row path where it serves (the same sums as the vector's row of a batched
    step's GEMM, and OpenBLAS's thread pool stays out of OpenMP's way: alternating calls of the
    two slowed both down many times over), else cblas_sgemv."""
    if native_gemm_serves(w.shape[1]):
        return lin_rows(w, b, x[None])[0]
    if _SGEMV is None:
        y = x @ w
    else:
        k, n = w.shape
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty(n, dtype=np.float32)
        _SGEMV(
            _ROW_MAJOR,
            _TRANS,
            k,
            n,
            1.0,
            w.ctypes.data,
            w.strides[0] // 4,
            x.ctypes.data,
            1,
            0.0,
            y.ctypes.data,
            1,
        )
    return y if b is None else y + b


class NumpyDecoder:
    """One-token forward pass of a llama.Model in numpy, equal to the MLX forward in float32."""

    def __init__(self, model: llama.Model, fused: FusedWeights) -> None:
        inner = model.model
        self.layers = [Layer(b, *f) for b, f in zip(inner.layers, fused, strict=True)]
        attn = inner.layers[0].self_attn
        self.rope = Rope(attn.rope)
        # The embedding table is stored (dims, vocab), the tied head's (in, out) layout: a
        # token's embedding is a strided column of it.
        table = in_out(inner.embed_tokens.weight)
        self.embed = table.T
        self.norm, self.norm_eps = f32_view(inner.norm.weight), inner.norm.eps
        tied = model.args.tie_word_embeddings
        self.head = table if tied else in_out(model.lm_head.weight)
        self.head_bias = None if tied else opt_bias(model.lm_head)

    def embedding(self, tokens: np.ndarray | int) -> np.ndarray:
        """The float32 embeddings of `tokens` (a copy: the table may be stored in float16)."""
        return self.embed[tokens].astype(np.float32)

    def step(self, token: int, cache: list[KVCache]) -> np.ndarray:
        h = self.embedding(token)
        angles = self.rope.angles(cache[0].offset)
        for layer, c in zip(self.layers, cache, strict=True):
            h = self._layer(layer, h, c, angles)
        h = _rms(h, self.norm, self.norm_eps)
        return _lin(self.head, self.head_bias, h)

    def _layer(
        self,
        ly: Layer,
        x: np.ndarray,
        c: KVCache,
        angles: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        d = ly.head_dim
        qkv = _lin(ly.wqkv, ly.bqkv, _rms(x, ly.attn_norm, ly.attn_eps))
        # Queries and keys are rotated together: one numpy expression instead of two.
        qk = self.rope(qkv[: ly.k_end].reshape(ly.n_heads + ly.n_kv, d), *angles)
        v = qkv[ly.k_end :].reshape(1, ly.n_kv, d)
        attn = np.empty((1, ly.n_heads * d), dtype=np.float32)
        attend_decoded(ly, [c], [0], qk[None], v, attn)
        attn = attn[0]
        h = x + _lin(ly.wo, ly.bo, attn)
        gu = _lin(ly.wgu, ly.bgu, _rms(h, ly.ffn_norm, ly.ffn_eps))
        g, u = gu[: ly.hidden], gu[ly.hidden :]
        act = g / (1.0 + np.exp(-g)) * u
        return h + _lin(ly.wd, ly.bd, act)


def numpy_decodable(model: nn.Module) -> str | None:
    """None if the numpy decode path reproduces this model exactly, else the reason it does not."""
    if type(model) is not llama.Model:
        return f"model class {type(model).__name__} is not mlx-lm's llama.Model"
    layers = model.model.layers
    if any(ly.use_sliding for ly in layers):
        return "sliding-window attention layers"
    ropes = {type(ly.self_attn.rope) for ly in layers}
    if ropes != {nn.RoPE}:
        return f"rope type {', '.join(sorted(r.__name__ for r in ropes))}"
    return None
