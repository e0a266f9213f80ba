"""The numpy pieces the CPU fast paths share: `NumpyDecoder` (app/llm/cpu_decode.py, one token),
`NumpyPrefiller` (app/llm/cpu_prefill.py, a prompt chunk) and `BatchDecoder`
(app/llm/cpu_batch.py, one token for each of many sequences) run the same layers (`Layer`,
`Rope`) on the same KV cache buffers (`kv_views`) with the same row kernels (`gemm`, `lin_rows`,
`rms_rows`, `rope_rows`); the two one-token paths share their KV write and attention
(`attend_decoded`: app/llm/attend.c, or `append_and_attend` in numpy), the two many-row paths
what follows attention (`mlp_rows`). Weight matrices are (in, out) (`in_out`).

The many-row GEMMs run app/llm/gemm.c where `make setup` built it (faster than OpenBLAS at every
row count measured, see its header), else `cblas_sgemm` of the OpenBLAS MLX uses (not numpy's
bundled one: two BLAS thread pools on two cores fight each other, see app/llm/cpu_decode.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from app.blas import load_blas

load_blas()  # before mlx, and before _find_sgemm looks for OpenBLAS in the global namespace

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models import llama  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm import gemm_native  # noqa: E402
from app.llm.attend_native import KERNEL, MAX_HEAD_DIM, MAX_REP  # noqa: E402
from app.llm.attend_native import THREADS as ATTEND_THREADS  # noqa: E402

# Per layer: ((q|k|v weight, bias), (gate|up weight, bias)), made by cpu_fast._fuse_layers; the
# weights as (in, out) matrices (see `in_out`).
FusedWeights = list[
    tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]
]


def f32_view(a: mx.array) -> np.ndarray:
    """A zero-copy float32 view; a copy only if the layout is not what cblas_sgemv needs."""
    return _c_float32(np.asarray(a))


def _c_float32(view: np.ndarray) -> np.ndarray:
    if view.dtype != np.float32 or not view.flags.c_contiguous:
        view = np.ascontiguousarray(view, dtype=np.float32)
    return view


def weight_view(a: mx.array) -> np.ndarray:
    """A zero-copy view of a weight matrix: float32, or float16 where cpu_fast stored it so
    (app/llm/gemm.c reads it; `gemm` says what happens where that kernel does not serve)."""
    return _c_weights(np.asarray(a))


def _c_weights(view: np.ndarray) -> np.ndarray:
    # rows contiguous, any row stride: cpu_fast stores every matrix with padded rows
    if view.dtype in (np.float16, np.float32) and _rows_ok(view, view.dtype.type):
        return view
    return _c_float32(view)


def in_out(weight: mx.array) -> np.ndarray:
    """A linear layer's (out, in) weight as the row-contiguous (in, out) matrix the numpy path
    multiplies by: zero-copy when the weight is stored transposed (cpu_fast.prepare_for_cpu
    stores every one so, its rows padded), a copy otherwise.

    Why (in, out): OpenBLAS 0.3.21 reads such a matrix faster, both as the GEMM operand of many
    rows and as a transposed GEMV (measured on 2 cores with SmolLM2-135M's matrices, a whole
    model's worth so that nothing stays in cache: a step of 1 / 16 / 128 rows took 6-8% less).
    """
    return _c_weights(np.asarray(weight).T)


def opt_bias(lin: nn.Linear) -> np.ndarray | None:
    return f32_view(lin.bias) if "bias" in lin else None


class Layer:
    """One llama block as numpy views: norms, fused q|k|v and gate|up, o and down projections."""

    def __init__(
        self,
        block: llama.TransformerBlock,
        qkv: tuple[np.ndarray, np.ndarray | None],
        gate_up: tuple[np.ndarray, np.ndarray | None],
    ) -> None:
        attn, mlp = block.self_attn, block.mlp
        self.attn_norm = f32_view(block.input_layernorm.weight)
        self.attn_eps = block.input_layernorm.eps
        self.ffn_norm = f32_view(block.post_attention_layernorm.weight)
        self.ffn_eps = block.post_attention_layernorm.eps
        self.wqkv, self.bqkv = qkv
        self.wo, self.bo = in_out(attn.o_proj.weight), opt_bias(attn.o_proj)
        self.wgu, self.bgu = gate_up
        self.wd, self.bd = in_out(mlp.down_proj.weight), opt_bias(mlp.down_proj)
        n_kv, head_dim = attn.n_kv_heads, attn.head_dim
        # int | None in llama's ModelArgs, filled in by its __post_init__ before any layer exists
        assert n_kv is not None and head_dim is not None
        self.n_heads, self.n_kv, self.head_dim = attn.n_heads, n_kv, head_dim
        self.scale = attn.scale
        self.q_end = self.n_heads * self.head_dim
        self.k_end = self.q_end + self.n_kv * self.head_dim
        self.hidden = mlp.gate_proj.weight.shape[0]


class Rope:
    """numpy twin of `nn.RoPE` (mx.fast.rope); angles computed once per step for all layers."""

    def __init__(self, rope: nn.RoPE) -> None:
        self.dims, self.traditional, self.scale = rope.dims, rope.traditional, rope.scale
        exponent = -np.arange(self.dims // 2, dtype=np.float32) * 2.0 / self.dims
        self.inv_freq = (rope.base**exponent).astype(np.float32)

    def angles(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        theta = np.float32(pos * self.scale) * self.inv_freq
        return np.cos(theta), np.sin(theta)

    def __call__(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """Rotate every row (head) of `x` by the angles of one position."""
        r = x[:, : self.dims]
        if self.traditional:  # GGUF layout: rotate adjacent pairs (x0, x1), (x2, x3), ...
            a, b = r[:, 0::2], r[:, 1::2]
            out = np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(r.shape)
        else:  # Hugging Face layout: rotate the two halves
            half = self.dims // 2
            a, b = r[:, :half], r[:, half:]
            out = np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=1)
        if self.dims == x.shape[1]:
            return out
        return np.concatenate([out, x[:, self.dims :]], axis=1)


def writable(a: mx.array) -> np.ndarray | None:
    view = np.asarray(a)  # evaluates `a`; zero-copy for a row-contiguous array
    return view if view.flags.writeable and view.flags.c_contiguous else None


def kv_views(cache: KVCache, n_kv: int, head_dim: int, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Writable numpy views of `cache`'s key/value buffers, with room for `n` more tokens.

    Taken afresh at every step: an MLX prefill replaces the buffers behind the same Python
    objects (`cache.keys[...] = ...` mutates the array object in place), so a view kept from an
    earlier step could point at memory MLX has let go of.
    """
    prev = cache.offset
    if cache.keys is None or prev + n > cache.keys.shape[2]:
        # Grow the way KVCache.update_and_fetch does, in steps of `cache.step` tokens.
        shape = (1, n_kv, (cache.step + n - 1) // cache.step * cache.step, head_dim)
        new_k, new_v = mx.zeros(shape, mx.float32), mx.zeros(shape, mx.float32)
        if cache.keys is None or cache.values is None:
            cache.keys, cache.values = new_k, new_v
        else:
            cache.keys = mx.concatenate([cache.keys[..., :prev, :], new_k], axis=2)
            cache.values = mx.concatenate([cache.values[..., :prev, :], new_v], axis=2)
    assert cache.keys is not None and cache.values is not None  # grown above when None
    kv, vv = writable(cache.keys), writable(cache.values)
    if kv is None or vv is None:
        cache.keys, cache.values = mx.contiguous(cache.keys), mx.contiguous(cache.values)
        kv, vv = writable(cache.keys), writable(cache.values)
        if kv is None or vv is None:
            raise RuntimeError("the KV cache buffers cannot be written through numpy")
    return kv, vv


def append_and_attend(
    cache: KVCache, pos: int, q: np.ndarray, k: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Write one token's keys and values at `pos` of `cache` and attend over positions 0..pos.

    `q` is (n_kv, rep, head_dim), already multiplied by the attention scale (a grouped-query
    layout: the `rep` query heads that share each KV head); `k` and `v` are (n_kv, head_dim).
    The cache's offset becomes pos + 1. Returns the attention output, (n_kv, rep, head_dim).
    `attend_decoded` runs this once per sequence where the compiled kernel cannot serve.
    """
    n_kv, head_dim = k.shape
    kv, vv = kv_views(cache, n_kv, head_dim)
    kv[0, :, pos, :] = k
    vv[0, :, pos, :] = v
    cache.offset = pos + 1
    # keys @ q.T, not q @ keys.T: numpy's stacked matmul is 2-4x slower with the transposed
    # keys operand (measured at 550 cached tokens: 72 -> 30 us per layer); the small scores
    # matrix is what gets transposed and copied.
    scores = (kv[0, :, : pos + 1, :] @ q.transpose(0, 2, 1)).transpose(0, 2, 1).copy()
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    out = scores @ vv[0, :, : pos + 1, :]
    out /= scores.sum(axis=-1, keepdims=True)
    return out


def attend_decoded(
    ly: Layer,
    caches: Sequence[KVCache],
    rows: Sequence[int],
    qk: np.ndarray,
    vals: np.ndarray,
    out: np.ndarray,
) -> None:
    """One decoded token's attention for each of `caches`, its token at `rows` of qk (rotated
    queries then keys, (rows, n_heads + n_kv, head_dim)) and vals ((rows, n_kv, head_dim)):
    its key and value are written at the cache's offset, the offset moves on by one, and the
    output goes to the same row of `out` (rows, n_heads * head_dim). The single-token step and
    the batched step both run this, so one sequence decodes alike in both."""
    kvh, d = ly.n_kv, ly.head_dim
    rep = ly.n_heads // kvh
    if not caches:
        return
    if not _native_layout(ly, qk, vals, out):
        scale = np.float32(ly.scale)
        for c, row in zip(caches, rows, strict=True):
            q = qk[row, : ly.n_heads].reshape(kvh, rep, d) * scale
            attn = append_and_attend(c, c.offset, q, qk[row, ly.n_heads :], vals[row])
            out[row] = attn.reshape(-1)
        return
    # Per sequence: its keys, values, their capacity, its position, its rows of qk, vals, out.
    # Built as Python ints: a numpy scalar write costs more than the kernel's work per row.
    keys, values, caps, pos = [], [], [], []
    for c in caches:
        kv, vv = kv_views(c, kvh, d)
        keys.append(kv.ctypes.data)
        values.append(vv.ctypes.data)
        caps.append(kv.shape[2])
        pos.append(c.offset)
        c.offset += 1
    table = np.array([keys, values, caps, pos, rows, rows, rows], dtype=np.int64)
    for i, a in enumerate((qk, vals, out), start=4):
        table[i] *= a.strides[0]
        table[i] += a.ctypes.data
    scratch = np.empty(ATTEND_THREADS * rep * (max(pos) + 1), dtype=np.float32)
    n, base = len(caches), table.ctypes.data
    assert KERNEL is not None  # _native_layout
    KERNEL(n, kvh, rep, d, ly.scale, *(base + 8 * n * i for i in range(7)), scratch.ctypes.data)


def _native_layout(ly: Layer, qk: np.ndarray, vals: np.ndarray, out: np.ndarray) -> bool:
    """Whether attend.c can serve: it is built, the heads fit its buffers and lanes, and each
    row of qk, vals and out is one contiguous float32 block."""
    d, rep = ly.head_dim, ly.n_heads // ly.n_kv
    return (
        KERNEL is not None
        and d <= MAX_HEAD_DIM
        and d % 8 == 0
        and rep <= MAX_REP
        and qk.dtype == vals.dtype == out.dtype == np.float32
        and qk.strides[1:] == vals.strides[1:] == (4 * d, 4)
        and out.strides[1] == 4
    )


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
_native_gemm = gemm_native.SERVES


def native_gemm_serves(n: int) -> bool:
    """Whether app/llm/gemm.c computes x @ w for a w of `n` columns (x @ w.T: any `n`)."""
    return _native_gemm and n % gemm_native.LANES == 0


def set_native_gemm(on: bool) -> bool:
    """Send x @ w through app/llm/gemm.c (on, the default where it is built) or OpenBLAS (off,
    for comparisons); return whether the compiled kernel now serves."""
    global _native_gemm
    _native_gemm = on and gemm_native.SERVES
    return _native_gemm


def _rows_ok(a: np.ndarray, dtype: type = np.float32) -> bool:
    """A 2-D matrix of `dtype` whose rows are contiguous (any row stride): what sgemm (float32)
    and gemm.c (float32, or float16 weights) can read."""
    size = np.dtype(dtype).itemsize
    return a.ndim == 2 and a.dtype == dtype and a.strides[1] == size and a.strides[0] % size == 0


def gemm(a: np.ndarray, b: np.ndarray, trans_b: bool) -> np.ndarray:
    """a @ b.T (trans_b) or a @ b, for float32 matrices with contiguous rows (b may be float16
    weights): app/llm/gemm.c where it is built and can serve, else cblas_sgemm. Every many-row
    step goes one way: the two thread pools, each spinning a while after its call, slow each
    other down when their calls alternate (a 300-token prefill took 2x as long)."""
    m, k = a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    native = (_native_gemm and k <= gemm_native.MAX_NT_K) if trans_b else native_gemm_serves(n)
    half = native and not trans_b and gemm_native.HALF and _rows_ok(b, np.float16)
    if b.dtype == np.float16 and not half:
        b = b.astype(np.float32)  # exact; only comparisons turn the kernel off after loading
    if _SGEMM is None and not native:
        return np.ascontiguousarray(a @ (b.T if trans_b else b))
    if not _rows_ok(a):
        a = np.ascontiguousarray(a, dtype=np.float32)
    if not half and not _rows_ok(b):
        b = np.ascontiguousarray(b, dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    if native:
        if half:
            kernel = gemm_native.KERNEL_F16
        else:
            kernel = gemm_native.KERNEL_NT if trans_b else gemm_native.KERNEL
        kernel(m, k, n, a.ctypes.data, a.strides[0] // 4, b.ctypes.data,
               b.strides[0] // b.itemsize, out.ctypes.data, n)  # fmt: skip
        return out
    assert _SGEMM is not None  # else numpy above
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
    """x @ w (+ b): a linear layer, w (in, out), over the rows of x."""
    y = gemm(x, w, trans_b=False)
    if b is not None:
        y += b
    return y


def rms_rows(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[1])
    return x * (1.0 / np.sqrt(ms + np.float32(eps)))[:, None] * w


def mlp_rows(ly: Layer, x: np.ndarray, attn: np.ndarray) -> np.ndarray:
    """The rest of layer `ly` over the rows of x once attention gave `attn` (rows, heads * d):
    the o projection and its residual, then the SwiGLU MLP and its residual."""
    h = x + lin_rows(ly.wo, ly.bo, attn)
    gu = lin_rows(ly.wgu, ly.bgu, rms_rows(h, ly.ffn_norm, ly.ffn_eps))
    g, u = gu[:, : ly.hidden], gu[:, ly.hidden :]
    # g / (1 + exp(-g)) * u as the decode step computes it, in one buffer: T x hidden
    # temporaries cost more than the exp at prompt sizes.
    act = np.negative(g)
    np.exp(act, out=act)
    act += 1.0
    np.divide(g, act, out=act)
    act *= u
    return h + lin_rows(ly.wd, ly.bd, act)


def rope_angles(rope: Rope, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (T, 1, dims/2) for the rows at `positions`."""
    theta = (positions * np.float32(rope.scale))[:, None] * rope.inv_freq[None, :]
    return np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]


def rope_rows(rope: Rope, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
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
