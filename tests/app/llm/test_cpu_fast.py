"""prepare_for_cpu must not change what the model computes: the numpy decode path and the fused
weights give the same logits (float32 rounding aside) and the same greedy tokens as the plain
dequantized MLX model, including across KV-cache growth, trimming and MLX prefills in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402
from mlx_lm.models import llama  # noqa: E402
from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache  # noqa: E402

from app.llm import cpu_fast, cpu_kernels, gemm_native  # noqa: E402
from app.llm.embedded import default_gguf_path  # noqa: E402
from app.llm.gguf import load_gguf  # noqa: E402
from app.llm.tokenizer import ChatTokenizer  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three uses of a paperclip.",
]

Models = tuple[nn.Module, nn.Module, ChatTokenizer]


def _run(worker: MLXWorker, fn: Callable[[], Any]) -> Any:
    return worker.call(fn)


def _logits(model: nn.Module, ids: list[int], cache: list[Any]) -> np.ndarray:
    out = model(mx.array(ids)[None], cache=cache)
    return np.array(out[0, -1].astype(mx.float32))


def _greedy(model: nn.Module, prompt: list[int], steps: int) -> tuple[list[int], list[np.ndarray]]:
    cache = make_prompt_cache(model)
    logits = _logits(model, prompt, cache)
    tokens, all_logits = [], [logits]
    for _ in range(steps):
        tokens.append(int(np.argmax(logits)))
        logits = _logits(model, [tokens[-1]], cache)
        all_logits.append(logits)
    return tokens, all_logits


@pytest.fixture(scope="module")
def smollm(mlx_worker: MLXWorker) -> Iterator[Models]:
    """(reference: dequantized float32 on MLX only, fast: prepare_for_cpu, tokenizer)."""
    held: list[Models] = []

    def build() -> None:
        loaded = load_gguf(default_gguf_path())
        ref = loaded.model
        cpu_fast.dequantize_model(ref)
        fast = load_gguf(default_gguf_path()).model
        what = cpu_fast.prepare_for_cpu(fast)
        assert "numpy decode on" in what, what
        held.append((ref, fast, ChatTokenizer.from_gguf_metadata(loaded.metadata)))

    _run(mlx_worker, build)
    yield held[0]
    _run(mlx_worker, held.clear)  # free the MLX arrays on the thread that made them


def test_prepare_dequantizes_every_quantized_layer(smollm: Models, mlx_worker: MLXWorker) -> None:
    ref, fast, _ = smollm
    kinds = {type(m) for _, m in fast.named_modules()}
    assert nn.QuantizedLinear not in kinds and nn.QuantizedEmbedding not in kinds
    assert isinstance(fast, cpu_fast.CPUFastModel)

    def halves() -> list[tuple[str, bool]]:
        """Each float16 parameter of `fast`, and whether it holds the reference's float32
        values exactly; every other parameter must be float32."""
        theirs = dict(tree_flatten(ref.parameters()))
        out = []
        for name, p in tree_flatten(fast.parameters()):
            assert p.dtype in (mx.float32, mx.float16), (name, p.dtype)
            if p.dtype == mx.float16:
                out.append((name, mx.array_equal(p.astype(mx.float32), theirs[name]).item()))
        return out

    found = _run(mlx_worker, halves)
    if gemm_native.HALF:  # every layer matrix and the tied embedding table, stored exactly
        layers = len(fast.model.layers)
        assert len(found) == 7 * layers + 1, len(found)
        assert all(same for _, same in found), [n for n, same in found if not same]
    else:
        assert found == []


def test_numpy_path_reads_the_mlx_weights_in_place_with_padded_rows(
    smollm: Models, mlx_worker: MLXWorker
) -> None:
    """One copy of the weights in memory, and no matrix whose rows are a multiple of 4 KB
    apart (the tied head's 96 KB rows made every GEMM tile read its panel from memory again)."""
    _, fast, _ = smollm
    dec = fast._np_decoder
    assert dec is not None
    inner = fast.model

    def check() -> list[str]:
        problems = []
        block, ly = inner.layers[0], dec.layers[0]
        pairs = [
            ("head", dec.head, inner.embed_tokens.weight),
            ("wqkv", ly.wqkv, block.self_attn.q_proj.weight),
            ("wo", ly.wo, block.self_attn.o_proj.weight),
            ("wgu", ly.wgu, block.mlp.gate_proj.weight),
            ("wd", ly.wd, block.mlp.down_proj.weight),
        ]
        for name, w, mlx_weight in pairs:
            row = w.shape[1] * w.itemsize
            if w.strides != (row + cpu_fast.ROW_PAD_BYTES, w.itemsize):
                problems.append(f"{name}: strides {w.strides} for {w.shape} {w.dtype}")
            if not np.shares_memory(w, np.asarray(mlx_weight)):
                problems.append(f"{name}: a copy of the MLX weight")
        return problems

    assert _run(mlx_worker, check) == []


@pytest.mark.parametrize("question", QUESTIONS)
def test_greedy_matches_dequantized_reference(
    question: str, smollm: Models, mlx_worker: MLXWorker
) -> None:
    ref, fast, tok = smollm
    prompt = tok.apply_chat_template([{"role": "user", "content": question}])
    ref_tokens, ref_logits = _run(mlx_worker, lambda: _greedy(ref, prompt, 12))
    fast_tokens, fast_logits = _run(mlx_worker, lambda: _greedy(fast, prompt, 12))
    assert fast_tokens == ref_tokens
    for a, b in zip(fast_logits, ref_logits, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3, rtol=1e-3)


def test_kv_cache_growth_trim_and_mlx_prefill_in_between(
    smollm: Models, mlx_worker: MLXWorker
) -> None:
    """A session's life: long prefill, decode across the 256-token cache step, a trim (prefix
    reuse), an MLX prefill of a new turn, more decoding. Both models see the same token ids."""
    ref, fast, _ = smollm
    rng = np.random.default_rng(0)
    first = [int(t) for t in rng.integers(100, 40000, size=250)]
    turn = [int(t) for t in rng.integers(100, 40000, size=40)]

    def session(model: nn.Module) -> list[np.ndarray]:
        cache = make_prompt_cache(model)
        out = [_logits(model, first, cache)]
        for i in range(12):  # 250 -> 262: crosses KVCache.step = 256
            out.append(_logits(model, [first[i]], cache))
        for c in cache:
            c.trim(5)
        out.append(_logits(model, turn, cache))  # multi-token: the numpy prefill path on `fast`
        for i in range(4):
            out.append(_logits(model, [turn[i]], cache))
        assert all(c.offset == 250 + 12 - 5 + 40 + 4 for c in cache)
        return out

    ref_out = _run(mlx_worker, lambda: session(ref))
    fast_out = _run(mlx_worker, lambda: session(fast))
    for a, b in zip(fast_out, ref_out, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3, rtol=1e-3)
        assert int(np.argmax(a)) == int(np.argmax(b))


def _tiny_args(**over: Any) -> llama.ModelArgs:
    base: dict[str, Any] = dict(
        model_type="llama",
        hidden_size=64,
        num_hidden_layers=2,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        vocab_size=128,
        rope_traditional=True,
    )
    base.update(over)
    return llama.ModelArgs(**base)


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"rope_traditional": False, "tie_word_embeddings": False},
        {"attention_bias": True, "mlp_bias": True, "head_dim": 32},
        {"rope_scaling": {"type": "linear", "factor": 2.0}, "num_key_value_heads": 4},
    ],
)
def test_tiny_quantized_models_match(over: dict[str, Any], mlx_worker: MLXWorker) -> None:
    """Random 4-bit llamas of other shapes: biases, untied head, HF rope layout, linear rope."""

    def check() -> None:
        mx.random.seed(1)
        model = llama.Model(_tiny_args(**over))
        nn.quantize(model, group_size=32, bits=4)
        mx.eval(model.parameters())
        ref = llama.Model(_tiny_args(**over))
        nn.quantize(ref, group_size=32, bits=4)
        ref.update(model.parameters())
        cpu_fast.dequantize_model(ref)
        what = cpu_fast.prepare_for_cpu(model)
        assert "numpy decode on" in what, what
        prompt = [3, 17, 42, 99, 5, 64, 7]
        ref_tokens, ref_logits = _greedy(ref, prompt, 10)
        tokens, logits = _greedy(model, prompt, 10)
        assert tokens == ref_tokens
        for a, b in zip(logits, ref_logits, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)

    _run(mlx_worker, check)


def test_unsupported_setups_use_the_mlx_path(mlx_worker: MLXWorker) -> None:
    def check() -> None:
        mx.random.seed(2)
        scaled = llama.Model(
            _tiny_args(
                rope_scaling={
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64,
                }
            )
        )
        mx.eval(scaled.parameters())
        what = cpu_fast.prepare_for_cpu(scaled)
        assert "numpy decode off (rope type" in what
        assert not isinstance(scaled, cpu_fast.CPUFastModel)

        model = llama.Model(_tiny_args())
        mx.eval(model.parameters())
        ref = llama.Model(_tiny_args())
        ref.update(model.parameters())
        cpu_fast.prepare_for_cpu(model)
        # A rotating cache is not the plain KVCache the numpy path writes: MLX must serve it.
        outs = []
        for m in (model, ref):
            cache = [RotatingKVCache(max_size=16) for _ in m.layers]
            m(mx.array([[1, 2, 3]]), cache=cache)
            outs.append(np.array(m(mx.array([[4]]), cache=cache)))
            assert all(type(c) is RotatingKVCache and c.offset == 4 for c in cache)
        np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)

    _run(mlx_worker, check)


def test_gpu_backend_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_fast, "on_cpu", lambda: False)
    model = object()
    assert cpu_fast.prepare_for_cpu(model) == "GPU backend: quantized weights kept"  # type: ignore[arg-type]


def test_cache_views_follow_replaced_buffers(mlx_worker: MLXWorker) -> None:
    """If MLX replaces the cache arrays (a prefill), the numpy path must not write stale views."""

    def check() -> None:
        cache = KVCache()
        kv, _ = cpu_kernels.kv_views(cache, n_kv=2, head_dim=8)
        assert kv.shape == (1, 2, KVCache.step, 8)
        kv[0, :, 0, :] = 1.0
        cache.offset = 1
        cache.update_and_fetch(mx.full((1, 2, 3, 8), 2.0), mx.full((1, 2, 3, 8), 2.0))
        kv2, _ = cpu_kernels.kv_views(cache, n_kv=2, head_dim=8)
        assert kv2[0, 0, 0, 0] == 1.0 and kv2[0, 0, 3, 0] == 2.0
        kv2[0, :, 4, :] = 3.0  # what the numpy decode step does, then bumps the offset
        cache.offset = 5
        keys, _ = cache.keys_and_values()
        assert keys.shape[2] == 5
        assert float(keys[0, 0, 3, 0]) == 2.0 and float(keys[0, 1, 4, 7]) == 3.0

    _run(mlx_worker, check)
