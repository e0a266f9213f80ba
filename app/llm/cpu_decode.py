"""The numpy decode path of `CPUFastModel`: single-token llama steps as cblas_sgemv GEMVs.

Why (measured on a 2-core x86 CPU with SmolLM2-135M, see app/llm/cpu_fast.py): a decode step is
200+ matrix-VECTOR products, and MLX always calls `cblas_sgemm`; Debian's OpenBLAS 0.3.21 packs
the whole weight matrix for an M=1 GEMM and reads weights at ~6 GB/s, while `cblas_sgemv` (what
numpy's `matrix @ vector` calls) streams them at ~17 GB/s. On top of that every `mx.eval` costs
~0.1 ms and every MLX op ~10 us on this backend. So single-token steps on a plain `KVCache` run
here (`NumpyDecoder`): fused q|k|v and gate|up matrices (fewer, larger GEMVs), the KV cache
written in place through zero-copy numpy views of the cache's MLX buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import TYPE_CHECKING, Any

from app.blas import load_blas

load_blas()  # before mlx, and before _find_sgemv looks for OpenBLAS in the global namespace

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models import llama  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

if TYPE_CHECKING:
    from app.llm.cpu_prefill import NumpyPrefiller

# Per layer: ((q|k|v weight, bias), (gate|up weight, bias)), made by cpu_fast._fuse_layers.
FusedWeights = list[
    tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]
]


def f32_view(a: mx.array) -> np.ndarray:
    """A zero-copy float32 view; a copy only if the layout is not what cblas_sgemv needs."""
    view = np.asarray(a)
    if view.dtype != np.float32 or not view.flags.c_contiguous:
        view = np.ascontiguousarray(view, dtype=np.float32)
    return view


def _opt_bias(lin: nn.Linear) -> np.ndarray | None:
    return f32_view(lin.bias) if "bias" in lin else None


class _Layer:
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
        self.wo, self.bo = f32_view(attn.o_proj.weight), _opt_bias(attn.o_proj)
        self.wgu, self.bgu = gate_up
        self.wd, self.bd = f32_view(mlp.down_proj.weight), _opt_bias(mlp.down_proj)
        self.n_heads, self.n_kv = attn.n_heads, attn.n_kv_heads
        self.head_dim = attn.head_dim
        self.scale = attn.scale
        self.q_end = self.n_heads * self.head_dim
        self.k_end = self.q_end + self.n_kv * self.head_dim
        self.hidden = mlp.gate_proj.weight.shape[0]


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


_ROW_MAJOR, _NO_TRANS = 101, 111


def _lin(w: np.ndarray, b: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """w @ x (+ b) for a C-contiguous float32 matrix and vector."""
    if _SGEMV is None:
        y = w @ x
    else:
        m, k = w.shape
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty(m, dtype=np.float32)
        _SGEMV(
            _ROW_MAJOR,
            _NO_TRANS,
            m,
            k,
            1.0,
            w.ctypes.data,
            k,
            x.ctypes.data,
            1,
            0.0,
            y.ctypes.data,
            1,
        )
    return y if b is None else y + b


class _Rope:
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


def _writable(a: mx.array) -> np.ndarray | None:
    view = np.asarray(a)  # evaluates `a`; zero-copy for a row-contiguous array
    return view if view.flags.writeable and view.flags.c_contiguous else None


def _views(cache: KVCache, n_kv: int, head_dim: int, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
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
        if cache.keys is None:
            cache.keys, cache.values = new_k, new_v
        else:
            cache.keys = mx.concatenate([cache.keys[..., :prev, :], new_k], axis=2)
            cache.values = mx.concatenate([cache.values[..., :prev, :], new_v], axis=2)
    kv, vv = _writable(cache.keys), _writable(cache.values)
    if kv is None or vv is None:
        cache.keys, cache.values = mx.contiguous(cache.keys), mx.contiguous(cache.values)
        kv, vv = _writable(cache.keys), _writable(cache.values)
        if kv is None or vv is None:
            raise RuntimeError("the KV cache buffers cannot be written through numpy")
    return kv, vv


class NumpyDecoder:
    """One-token forward pass of a llama.Model in numpy, equal to the MLX forward in float32."""

    def __init__(self, model: llama.Model, fused: FusedWeights) -> None:
        inner = model.model
        self.layers = [_Layer(b, *f) for b, f in zip(inner.layers, fused, strict=True)]
        attn = inner.layers[0].self_attn
        self.rope = _Rope(attn.rope)
        self.embed = f32_view(inner.embed_tokens.weight)
        self.norm, self.norm_eps = f32_view(inner.norm.weight), inner.norm.eps
        tied = model.args.tie_word_embeddings
        self.head = self.embed if tied else f32_view(model.lm_head.weight)
        self.head_bias = None if tied else _opt_bias(model.lm_head)

    def step(self, token: int, cache: list[KVCache]) -> np.ndarray:
        h = self.embed[token].copy()
        pos = cache[0].offset
        angles = self.rope.angles(pos)
        for layer, c in zip(self.layers, cache, strict=True):
            h = self._layer(layer, h, c, pos, angles)
        h = _rms(h, self.norm, self.norm_eps)
        return _lin(self.head, self.head_bias, h)

    def _layer(
        self,
        ly: _Layer,
        x: np.ndarray,
        c: KVCache,
        pos: int,
        angles: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        d = ly.head_dim
        qkv = _lin(ly.wqkv, ly.bqkv, _rms(x, ly.attn_norm, ly.attn_eps))
        # Queries and keys are rotated together: one numpy expression instead of two.
        qk = self.rope(qkv[: ly.k_end].reshape(ly.n_heads + ly.n_kv, d), *angles)
        q = qk[: ly.n_heads]
        kv, vv = _views(c, ly.n_kv, d)
        kv[0, :, pos, :] = qk[ly.n_heads :]
        vv[0, :, pos, :] = qkv[ly.k_end :].reshape(ly.n_kv, d)
        c.offset = pos + 1
        keys, values = kv[0, :, : pos + 1, :], vv[0, :, : pos + 1, :]
        rep = ly.n_heads // ly.n_kv
        scores = (q.reshape(ly.n_kv, rep, d) * ly.scale) @ keys.transpose(0, 2, 1)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attn = (scores @ values).reshape(-1)
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


class CPUFastModel(llama.Model):
    """llama.Model whose steps on a plain KVCache run in numpy: single tokens through
    `NumpyDecoder`, multi-token chunks through `NumpyPrefiller` (app/llm/cpu_prefill.py).

    Instances are made by switching the class of an existing model (`prepare_for_cpu`), so every
    parameter, method and the cache layout stay mlx-lm's own.
    """

    _np_decoder: NumpyDecoder | None
    _np_prefiller: NumpyPrefiller | None

    def __call__(
        self,
        inputs: mx.array,
        cache: list[Any] | None = None,
        input_embeddings: mx.array | None = None,
    ) -> mx.array:
        dec = self._np_decoder
        if (
            dec is not None
            and input_embeddings is None
            and cache is not None
            and inputs.ndim == 2
            and inputs.shape[0] == 1
            and all(type(c) is KVCache for c in cache)
        ):
            if inputs.shape[1] == 1:
                logits = dec.step(int(inputs.item()), cache)
                return mx.array(logits)[None, None, :]
            pre = self._np_prefiller
            if pre is not None and inputs.shape[1] > 1:
                h = self.model.norm(mx.array(pre.hidden(np.array(inputs[0]), cache))[None])
                # Lazy: a prefill chunk whose logits nobody reads never pays for the head.
                if self.args.tie_word_embeddings:
                    return self.model.embed_tokens.as_linear(h)
                return self.lm_head(h)
        return super().__call__(inputs, cache=cache, input_embeddings=input_embeddings)


def disable_numpy_decode(model: nn.Module) -> None:
    """Send every step through MLX again (for comparisons); the fused weights stay."""
    if isinstance(model, CPUFastModel):
        object.__setattr__(model, "_np_decoder", None)
        object.__setattr__(model, "_np_prefiller", None)


def set_numpy_prefill(model: nn.Module, on: bool) -> bool:
    """Run multi-token chunks in numpy (on) or through MLX (off, for comparisons); return whether
    the numpy prefill path is now in use (never without the numpy decoder)."""
    if not isinstance(model, CPUFastModel):
        return False
    dec = model._np_decoder
    from app.llm.cpu_prefill import NumpyPrefiller

    object.__setattr__(model, "_np_prefiller", NumpyPrefiller(dec) if on and dec else None)
    return model._np_prefiller is not None
