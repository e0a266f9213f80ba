"""A tiny random llama GGUF (float weights, byte-level vocab) written with mx.save_gguf."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.llm.tokenizer import _bytes_to_unicode
from app.llm.worker import MLXWorker

TINY = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ff": 128, "ctx": 256}
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_metadata(arch: str = "llama") -> dict[str, Any]:
    import mlx.core as mx

    u32 = mx.uint32
    byte_tokens = list(_bytes_to_unicode().values())
    tokens = SPECIALS + byte_tokens + ["Ġt", "he", "Ġthe"]
    types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS))
    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": "tiny",
        f"{arch}.embedding_length": mx.array(TINY["hidden"], dtype=u32),
        f"{arch}.block_count": mx.array(TINY["layers"], dtype=u32),
        f"{arch}.feed_forward_length": mx.array(TINY["ff"], dtype=u32),
        f"{arch}.attention.head_count": mx.array(TINY["heads"], dtype=u32),
        f"{arch}.attention.head_count_kv": mx.array(TINY["kv_heads"], dtype=u32),
        f"{arch}.context_length": mx.array(TINY["ctx"], dtype=u32),
        f"{arch}.rope.freq_base": mx.array(10000.0, dtype=mx.float32),
        f"{arch}.attention.layer_norm_rms_epsilon": mx.array(1e-5, dtype=mx.float32),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.merges": ["Ġ t", "h e", "Ġt he"],
        "tokenizer.ggml.token_type": mx.array(types, dtype=mx.int32),
        "tokenizer.ggml.bos_token_id": mx.array(1, dtype=u32),
        "tokenizer.ggml.eos_token_id": mx.array(2, dtype=u32),
    }
    return meta


def tiny_tensors(vocab: int, tied: bool) -> dict[str, Any]:
    import mlx.core as mx

    h, ff = TINY["hidden"], TINY["ff"]
    kv = h // TINY["heads"] * TINY["kv_heads"]
    mx.random.seed(0)

    def rnd(*shape: int) -> Any:
        return (mx.random.normal(shape) * 0.05).astype(mx.float16)

    t: dict[str, Any] = {"token_embd.weight": rnd(vocab, h), "output_norm.weight": mx.ones((h,))}
    if not tied:
        t["output.weight"] = rnd(vocab, h)
    for i in range(TINY["layers"]):
        p = f"blk.{i}."
        t |= {
            p + "attn_q.weight": rnd(h, h),
            p + "attn_k.weight": rnd(kv, h),
            p + "attn_v.weight": rnd(kv, h),
            p + "attn_output.weight": rnd(h, h),
            p + "ffn_gate.weight": rnd(ff, h),
            p + "ffn_up.weight": rnd(ff, h),
            p + "ffn_down.weight": rnd(h, ff),
            p + "attn_norm.weight": mx.ones((h,)),
            p + "ffn_norm.weight": mx.ones((h,)),
        }
    return t


@pytest.fixture
def write_gguf(mlx_worker: MLXWorker, tmp_path: Path) -> Callable[..., Path]:
    """write_gguf(arch="llama", tied=False, drop=()) -> path of a tiny GGUF."""

    def write(arch: str = "llama", tied: bool = False, drop: tuple[str, ...] = ()) -> Path:
        import mlx.core as mx

        def build() -> Path:
            meta = tiny_metadata(arch)
            tensors = tiny_tensors(len(meta["tokenizer.ggml.tokens"]), tied)
            for key in drop:
                meta.pop(key, None)
                tensors.pop(key, None)
            path = tmp_path / f"tiny-{arch}{'-tied' if tied else ''}.gguf"
            mx.save_gguf(str(path), tensors, meta)
            return path

        return mlx_worker.call(build)

    return write
