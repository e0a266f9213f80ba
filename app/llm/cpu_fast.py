"""Make an mlx-lm llama model fast on MLX's CPU backend.

Measured on a 2-core x86 CPU with SmolLM2-135M (see benchmarks/engine.py and the README):

- MLX's 4-bit matmul on CPU is a one-thread loop; float32 weights go through OpenBLAS instead and
  decode ~2x / prefill ~10x faster. So every quantized layer is dequantized once at load time.
- Single-token decode steps on a plain `KVCache` run in numpy through cblas_sgemv (why, and how:
  app/llm/cpu_decode.py), on fused q|k|v and gate|up matrices. Prompt chunks (many tokens at
  once) run in numpy too, through GEMMs (app/llm/cpu_prefill.py; app/llm/gemm.c where built, else
  cblas_sgemm): MLX's unfused CPU
  attention made them ~3x slower, most of all at a large KV offset. MLX and both numpy paths
  share one copy of the weights (fused here, viewed by all) and the same KV cache buffers.

On a GPU the quantized kernels are fast and the model is left alone. Everything here runs on the
MLX worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from mlx.utils import tree_map_with_path  # noqa: E402
from mlx_lm.models import llama  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm import attend_native, gemm_native  # noqa: E402
from app.llm.cpu_decode import NumpyDecoder, gemv_library, numpy_decodable  # noqa: E402
from app.llm.cpu_kernels import FusedWeights, f32_view, weight_view  # noqa: E402
from app.llm.cpu_prefill import NumpyPrefiller  # noqa: E402

__all__ = [
    "CPUFastModel",
    "dequantize_model",
    "disable_numpy_decode",
    "on_cpu",
    "prepare_for_cpu",
    "set_numpy_prefill",
]


def on_cpu() -> bool:
    return mx.default_device() == mx.cpu


# -- dequantization -------------------------------------------------------------------------


def _dequantized_weight(layer: nn.Module) -> mx.array:
    w = mx.dequantize(
        layer["weight"],
        scales=layer["scales"],
        biases=layer.get("biases"),
        group_size=layer.group_size,
        bits=layer.bits,
        mode=layer.mode,
        # float32 out, but computed in the scales' float16: every value is a float16 (_half)
        dtype=mx.float32,
    )
    mx.eval(w)  # one layer at a time: keeps the load-time memory peak low
    return w


def _to_float(layer: nn.Module) -> nn.Module:
    w = _dequantized_weight(layer)
    if isinstance(layer, nn.QuantizedEmbedding):
        emb = nn.Embedding(*w.shape)
        emb.weight = w
        return emb
    has_bias = "bias" in layer
    lin = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
    lin.weight = w
    if has_bias:
        lin.bias = layer["bias"].astype(mx.float32)
    return lin


def dequantize_model(model: nn.Module) -> int:
    """Replace every quantized layer by its float32 equivalent; return how many were replaced."""
    count = 0

    def swap(_path: str, m: nn.Module) -> nn.Module:
        nonlocal count
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            count += 1
            return _to_float(m)
        return m

    leaves = tree_map_with_path(swap, model.leaf_modules(), is_leaf=nn.Module.is_module)
    model.update_modules(leaves)
    # Norm weights may come as float16; mixed dtypes would upcast in every op. Arrays already
    # float32 are left as they are: they may be views into a fused buffer (see _fuse_group).
    model.update(
        tree_map_with_path(
            lambda _p, a: (
                a.astype(mx.float32)
                if isinstance(a, mx.array)
                and mx.issubdtype(a.dtype, mx.floating)
                and a.dtype != mx.float32
                else a
            ),
            model.parameters(),
        )
    )
    mx.eval(model.parameters())
    return count


# -- fused weights shared by both paths -----------------------------------------------------


def _float_rows(layers: list[nn.Module]) -> mx.array:
    """The float32 weights of `layers` stacked by rows.

    Quantized layers sharing one quantization are concatenated while still packed (affine
    quantization works row by row) and dequantized once: no separate float32 copies exist even
    for a moment, which keeps the load-time memory peak down.
    """
    quant = [m for m in layers if isinstance(m, nn.QuantizedLinear)]
    if len(quant) == len(layers):
        kinds = {(m.bits, m.group_size, m.mode, m.get("biases") is None) for m in quant}
        if len(kinds) == 1:
            first = quant[0]
            biases = None if first.get("biases") is None else [m["biases"] for m in quant]
            return mx.dequantize(
                mx.concatenate([m["weight"] for m in quant]),
                scales=mx.concatenate([m["scales"] for m in quant]),
                biases=None if biases is None else mx.concatenate(biases),
                group_size=first.group_size,
                bits=first.bits,
                mode=first.mode,
                dtype=mx.float32,
            )
    return mx.concatenate(
        [_dequantized_weight(m) if isinstance(m, nn.QuantizedLinear) else m.weight for m in layers]
    ).astype(mx.float32)


# Every stored (in, out) matrix gets rows this many bytes longer than its values. A GEMM tile
# walks down a column panel, one row of the matrix after another; at a row stride that is a
# multiple of 4 KB (the tied head: 49,152 float16 columns, 96 KB) every row maps to the same
# cache sets, so a panel cannot stay in cache and each tile of rows reads it from memory again.
# With one cache line more per row the rows spread over the sets: on 2 Zen 3 cores the head took
# 22 -> 8 ms for 16 rows and a whole model's layers 42 -> 33 ms (README, Many streams).
ROW_PAD_BYTES = 64


def _padded(a: mx.array) -> mx.array:
    """A copy of the 2-D `a` whose rows are ROW_PAD_BYTES longer (zeros), as an (unpadded)
    view: MLX and numpy both read such a view in place."""
    rows, cols = a.shape
    extra = mx.zeros((rows, ROW_PAD_BYTES // a.dtype.size), dtype=a.dtype)
    full = mx.concatenate([a, extra], axis=1)
    mx.eval(full)
    return full[:, :cols]


def _fuse_group(parent: nn.Module, names: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Fuse the linear layers `names` of `parent` into one float32 (in, out) matrix (their
    outputs side by side), stored so (see cpu_kernels.in_out).

    Each layer is replaced by an nn.Linear whose weight is a transposed view into the fused
    buffer, so the MLX path keeps working unchanged and the numpy path gets its fused matrix
    without a second copy of the weights in memory.
    """
    layers = [getattr(parent, n) for n in names]
    fused = _padded(_float_rows(layers).T)
    rows = [m.weight.shape[0] for m in layers]
    bias = None
    if any("bias" in m for m in layers):
        parts = [
            m["bias"] if "bias" in m else mx.zeros((r,)) for m, r in zip(layers, rows, strict=True)
        ]
        bias = mx.concatenate(parts).astype(mx.float32)
    mx.eval(fused, *([] if bias is None else [bias]))
    start = 0
    for name, r in zip(names, rows, strict=True):
        lin = nn.Linear(fused.shape[0], r, bias=bias is not None)
        lin.weight = fused[:, start : start + r].T
        if bias is not None:
            lin.bias = bias[start : start + r]
        setattr(parent, name, lin)
        start += r
    mx.eval(parent.parameters())
    return weight_view(fused), (None if bias is None else f32_view(bias))


def _fuse_layers(model: llama.Model) -> FusedWeights:
    return [
        (
            _fuse_group(b.self_attn, ["q_proj", "k_proj", "v_proj"]),
            _fuse_group(b.mlp, ["gate_proj", "up_proj"]),
        )
        for b in model.model.layers
    ]


def _store_transposed(model: llama.Model) -> None:
    """Store the float32 weights the fused groups left, and the embedding table, as (in, out)
    matrices: each module keeps a transposed view, so MLX computes the same, and the numpy path
    views them without a copy (cpu_kernels.in_out). One matrix at a time: the peak is one copy."""
    inner = model.model
    mods: list[nn.Module] = [m for b in inner.layers for m in (b.self_attn.o_proj, b.mlp.down_proj)]
    mods.append(inner.embed_tokens)
    if not model.args.tie_word_embeddings:
        mods.append(model.lm_head)
    for m in mods:
        m.weight = _padded(m.weight.T).T


def _half(w: mx.array) -> mx.array | None:
    """w in float16 if that changes no value, else None. A GGUF's dequantized layers pass:
    mx.dequantize computes them in the scales' float16 whatever dtype it returns."""
    h = w.astype(mx.float16)
    mx.eval(h)
    step = 64  # rows compared at a time: no float32 copy of the whole matrix at load
    for i in range(0, w.shape[0], step):
        if not mx.array_equal(h[i : i + step].astype(mx.float32), w[i : i + step]).item():
            return None
    return h


def _store_half_group(parent: nn.Module, names: list[str]) -> np.ndarray | None:
    """The (in, out) matrix of the linear layers `names` of `parent` (outputs side by side)
    stored in float16, each layer's weight a view into it, if exact; else None."""
    layers = [getattr(parent, n) for n in names]
    stored = mx.concatenate([m.weight.T for m in layers], axis=1)
    half = _half(stored)
    del stored
    if half is None:
        return None
    half = _padded(half)
    start = 0
    for m in layers:
        rows = m.weight.shape[0]
        m.weight = half[:, start : start + rows].T
        start += rows
    return weight_view(half)


class HalfEmbedding(nn.Embedding):
    """An embedding table stored in float16 that gives float32 rows, so the model around it
    computes in float32 as before (its values exact in float16, see `_half`)."""

    def __call__(self, x: mx.array) -> mx.array:
        return super().__call__(x).astype(mx.float32)


def _store_half_embedding(model: llama.Model) -> int:
    """The tied embedding table (the head: the largest matrix a decode step reads) in float16
    where that is exact; returns 1 if it now is, else 0."""
    emb = model.model.embed_tokens
    if not model.args.tie_word_embeddings or type(emb) is not nn.Embedding:
        return 0
    half = _half(emb.weight.T)  # stored (dims, vocab) by _store_transposed
    if half is None:
        return 0
    emb.weight = _padded(half).T
    emb.__class__ = HalfEmbedding
    return 1


def _store_half(model: llama.Model, fused: FusedWeights) -> tuple[FusedWeights, int]:
    """Every layer's matrices in float16 where that is exact (app/llm/gemm.c converts them back
    as it reads: the same sums from half the bytes a step streams; README, Many streams). MLX
    promotes them to float32 in each op, so its path computes the same too. Returns the fused
    weights to use and how many matrices are now float16. One group at a time: the peak is one
    float32 copy of it."""
    out: FusedWeights = []
    count = 0
    for block, (qkv, gate_up) in zip(model.model.layers, fused, strict=True):
        attn, mlp = block.self_attn, block.mlp
        groups = []
        for (w, b), (parent, names) in (
            (qkv, (attn, ["q_proj", "k_proj", "v_proj"])),
            (gate_up, (mlp, ["gate_proj", "up_proj"])),
        ):
            half = _store_half_group(parent, names)
            groups.append((w if half is None else half, b))
            count += half is not None
        for parent, name in ((attn, "o_proj"), (mlp, "down_proj")):
            count += _store_half_group(parent, [name]) is not None
        out.append((groups[0], groups[1]))
    return out, count + _store_half_embedding(model)


def _release_freed_memory() -> None:
    """Return heap pages freed by dequantization to the OS (glibc keeps them otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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
                logits = dec.step(int(np.array(inputs)[0, 0]), cache)
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
    object.__setattr__(model, "_np_prefiller", NumpyPrefiller(dec) if on and dec else None)
    return model._np_prefiller is not None


def prepare_for_cpu(model: nn.Module, numpy_decode: bool = True) -> str:
    """Adapt `model` in place for fast inference on this backend; describe what was done.

    On the CPU backend: quantized layers become float32 (OpenBLAS), q|k|v and gate|up are fused,
    and decode steps and prompt chunks run in numpy (see the module docstring).
    `numpy_decode=False` keeps only the dequantization (the plain float32 MLX model), for
    comparisons; `set_numpy_prefill(model, False)` sends only prompt chunks back to MLX.
    """
    if not on_cpu():
        return "GPU backend: quantized weights kept"
    reason = numpy_decodable(model) if numpy_decode else "disabled"
    n_quant = sum(
        isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding) for _, m in model.named_modules()
    )
    # numpy_decodable said None only for mlx-lm's llama.Model
    fused = _fuse_layers(model) if reason is None and isinstance(model, llama.Model) else None
    dequantize_model(model)
    what = f"CPU backend: {n_quant} quantized layers dequantized to float32"
    if fused is not None:
        assert isinstance(model, llama.Model)  # as fused is not None
        _store_transposed(model)
        halves = 0
        if gemm_native.HALF:
            fused, halves = _store_half(model, fused)
        decoder = NumpyDecoder(model, fused)
        model.__class__ = CPUFastModel
        # nn.Module is a dict of parameters and children; keep the decoder out of it.
        object.__setattr__(model, "_np_decoder", decoder)
        object.__setattr__(model, "_np_prefiller", NumpyPrefiller(decoder))
        what += (
            "; numpy decode on (fused q|k|v and gate|up GEMVs via "
            f"{gemv_library()}, KV cache written in place, decode attention "
            f"{attend_native.description()}); numpy prefill on (many-row GEMMs: "
            f"{gemm_native.description()})"
        )
        if halves:
            what += f"; {halves} matrices stored as float16 (exactly: they read the same)"
    else:
        what += f"; numpy decode off ({reason})"
    mx.clear_cache()
    _release_freed_memory()
    return what
