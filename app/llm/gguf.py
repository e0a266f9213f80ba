"""Build an mlx-lm llama model from a llama-architecture GGUF file.

`mx.load` reads GGUF natively: Q4_0/Q4_1/Q8_0 tensors arrive in MLX's affine quantized layout
(weight + scales + biases, group size 32) and the metadata holds the hyper-parameters and the
tokenizer. Each tensor keeps its own bit width (e.g. Q8_0 embeddings beside Q4_1 layers).

Must run on the MLX worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
from mlx_lm.models import llama  # noqa: E402

from app.llm.types import ModelLoadError  # noqa: E402

GGUF_MAGIC = b"GGUF"
GGUF_GROUP_SIZE = 32
DEFAULT_CONTEXT = 4096

_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias|scales|biases)$")
_TOP_RE = re.compile(r"^([a-z_]+)\.(weight|bias|scales|biases)$")
# Tensors the mlx-lm model derives itself (rotary frequencies).
_IGNORED = {"rope_freqs.weight"}


@dataclass
class GGUFModel:
    model: llama.Model
    metadata: dict[str, Any]
    context_length: int
    quantization: dict[str, int]  # module path -> bits, for the quantized ones


def _scalar(meta: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = meta.get(key, default)
    if isinstance(value, mx.array):
        return value.item() if value.size == 1 else value.tolist()
    return value


Loaded = tuple[dict[str, mx.array], dict[str, Any]]


def read_metadata(path: str | Path) -> Loaded:
    """Load tensors and metadata, turning every failure into a ModelLoadError naming the file."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file {p} does not exist")
    if not p.is_file():
        raise ModelLoadError(f"model path {p} is not a file")
    with p.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ModelLoadError(f"{p} is not a GGUF file (bad magic bytes)")
    try:
        # return_metadata=True: (tensors, metadata); the stub has one union for every form
        loaded = cast(Loaded, mx.load(str(p), return_metadata=True))
        weights, metadata = loaded
    except Exception as exc:  # noqa: BLE001 - mlx raises plain RuntimeError/ValueError
        raise ModelLoadError(f"could not read GGUF file {p}: {exc}") from exc
    return weights, dict(metadata)


def model_args(meta: Mapping[str, Any], weights: Mapping[str, mx.array], path: Path) -> Any:
    arch = _scalar(meta, "general.architecture")
    if arch != "llama":
        raise ModelLoadError(
            f"{path}: unsupported GGUF architecture {arch!r}; only 'llama' models are supported"
        )

    def need(key: str) -> Any:
        value = _scalar(meta, f"llama.{key}")
        if value is None:
            raise ModelLoadError(f"{path}: GGUF metadata lacks llama.{key}")
        return value

    hidden = int(need("embedding_length"))
    heads = int(need("attention.head_count"))
    kv_heads = int(_scalar(meta, "llama.attention.head_count_kv", heads))
    head_dim = int(_scalar(meta, "llama.attention.key_length", hidden // heads))
    if "token_embd.weight" not in weights:
        raise ModelLoadError(f"{path}: GGUF has no token_embd.weight tensor")
    vocab = _scalar(meta, "llama.vocab_size")
    if vocab is None:
        vocab = len(meta.get("tokenizer.ggml.tokens", [])) or weights["token_embd.weight"].shape[0]
    rope_scaling: dict[str, float | str] | None = None
    if _scalar(meta, "llama.rope.scaling.type") == "linear":
        rope_scaling = {"type": "linear", "factor": float(need("rope.scaling.factor"))}
    return llama.ModelArgs(
        model_type="llama",
        hidden_size=hidden,
        num_hidden_layers=int(need("block_count")),
        intermediate_size=int(need("feed_forward_length")),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        rms_norm_eps=float(_scalar(meta, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        vocab_size=int(vocab),
        rope_theta=float(_scalar(meta, "llama.rope.freq_base", 10000.0)),
        # llama.cpp's converter permutes Q/K rows into the interleaved rotary layout.
        rope_traditional=True,
        rope_scaling=rope_scaling,
        max_position_embeddings=_scalar(meta, "llama.context_length"),
        attention_bias="blk.0.attn_q.bias" in weights,
        mlp_bias="blk.0.ffn_up.bias" in weights,
        tie_word_embeddings="output.weight" not in weights,
    )


def map_names(weights: Mapping[str, mx.array], path: Path) -> dict[str, mx.array]:
    """GGUF tensor names -> mlx-lm llama parameter names."""
    out: dict[str, mx.array] = {}
    for name, value in weights.items():
        if name in _IGNORED:
            continue
        if m := _BLOCK_RE.match(name):
            block, part, kind = m.groups()
            if part not in _LAYER_NAMES:
                raise ModelLoadError(f"{path}: unexpected tensor {name!r} in a llama GGUF")
            out[f"model.layers.{block}.{_LAYER_NAMES[part]}.{kind}"] = value
        elif (m := _TOP_RE.match(name)) and m.group(1) in _TOP_NAMES:
            out[f"{_TOP_NAMES[m.group(1)]}.{m.group(2)}"] = value
        else:
            raise ModelLoadError(f"{path}: unexpected tensor {name!r} in a llama GGUF")
    return out


def _bits_of(weights: Mapping[str, mx.array], module_path: str, in_features: int) -> int:
    packed = weights[f"{module_path}.weight"]
    bits = packed.shape[-1] * 32 // in_features
    if bits not in (2, 3, 4, 5, 6, 8) or packed.shape[-1] * 32 != bits * in_features:
        raise ModelLoadError(f"cannot infer the bit width of {module_path} ({packed.shape})")
    return bits


def quantize_like(model: nn.Module, weights: Mapping[str, mx.array]) -> dict[str, int]:
    """Turn the modules whose weights come quantized into Quantized* with matching bits."""
    chosen: dict[str, int] = {}

    def predicate(module_path: str, module: nn.Module) -> bool | dict[str, Any]:
        if f"{module_path}.scales" not in weights:
            return False
        if not isinstance(module, (nn.Embedding, nn.Linear)):
            return False
        in_features = module.weight.shape[1]
        bits = _bits_of(weights, module_path, in_features)
        chosen[module_path] = bits
        return {"group_size": GGUF_GROUP_SIZE, "bits": bits, "mode": "affine"}

    nn.quantize(model, class_predicate=predicate)
    return chosen


def load_gguf(path: str | Path) -> GGUFModel:
    """Load a llama GGUF into an mlx-lm `llama.Model` (weights evaluated)."""
    p = Path(path).expanduser()
    weights, meta = read_metadata(p)
    args = model_args(meta, weights, p)
    mapped = map_names(weights, p)
    model = llama.Model(args)
    quant = quantize_like(model, mapped)
    try:
        model.load_weights(list(mapped.items()), strict=True)
    except ValueError as exc:
        raise ModelLoadError(f"{p}: tensors do not match a llama model: {exc}") from exc
    mx.eval(model.parameters())
    model.eval()
    ctx = int(_scalar(meta, "llama.context_length", DEFAULT_CONTEXT) or DEFAULT_CONTEXT)
    return GGUFModel(model=model, metadata=meta, context_length=ctx, quantization=quant)
