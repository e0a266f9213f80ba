"""Loading llama GGUF files: the real embedded model, tiny written ones, and bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.llm.embedded import default_gguf_path
from app.llm.gguf import GGUFModel, load_gguf, quantize_like
from app.llm.types import ModelLoadError
from app.llm.worker import MLXWorker


@pytest.fixture(scope="module")
def smollm(mlx_worker: MLXWorker) -> GGUFModel:
    return mlx_worker.call(load_gguf, default_gguf_path())


def test_embedded_model_hyperparameters(smollm: GGUFModel) -> None:
    args = smollm.model.args
    assert (args.hidden_size, args.num_hidden_layers) == (576, 30)
    assert (args.num_attention_heads, args.num_key_value_heads) == (9, 3)
    assert args.rope_traditional is True
    assert args.tie_word_embeddings is True
    assert args.rope_theta == 100000.0
    assert smollm.context_length == 8192


def test_embedded_model_keeps_per_tensor_bits(smollm: GGUFModel) -> None:
    # Q8_0 token embeddings beside Q4_1 layers.
    assert smollm.quantization["model.embed_tokens"] == 8
    layer_bits = {b for p, b in smollm.quantization.items() if p.startswith("model.layers.")}
    assert layer_bits == {4}
    assert len(smollm.quantization) == 1 + 30 * 7
    assert not hasattr(smollm.model, "lm_head")


def test_quantize_like_builds_matching_layers(mlx_worker: MLXWorker) -> None:
    def run() -> tuple[type, int, type, int, bool]:
        import mlx.core as mx
        import mlx.nn as nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = nn.Embedding(64, 64)
                self.proj = nn.Linear(64, 32, bias=False)
                self.norm = nn.RMSNorm(64)

        w_emb = mx.random.normal((64, 64))
        w_proj = mx.random.normal((32, 64))
        q8 = mx.quantize(w_emb, group_size=32, bits=8)
        q4 = mx.quantize(w_proj, group_size=32, bits=4)
        weights = {
            "emb.weight": q8[0], "emb.scales": q8[1], "emb.biases": q8[2],
            "proj.weight": q4[0], "proj.scales": q4[1], "proj.biases": q4[2],
            "norm.weight": mx.ones((64,)),
        }  # fmt: skip
        net = Net()
        bits = quantize_like(net, weights)
        net.load_weights(list(weights.items()), strict=True)
        x = mx.random.normal((1, 64))
        ref = x @ mx.dequantize(*q4, group_size=32, bits=4).T
        close = bool(mx.allclose(net.proj(x), ref, atol=1e-4).item())
        return type(net.emb), bits["emb"], type(net.proj), bits["proj"], close

    emb_type, emb_bits, proj_type, proj_bits, close = mlx_worker.call(run)
    assert emb_type.__name__ == "QuantizedEmbedding" and emb_bits == 8
    assert proj_type.__name__ == "QuantizedLinear" and proj_bits == 4
    assert close


@pytest.mark.parametrize("tied", [False, True])
def test_tiny_llama_gguf_loads_and_runs(
    mlx_worker: MLXWorker, write_gguf: Callable[..., Path], tied: bool
) -> None:
    path = write_gguf(tied=tied)

    def run() -> tuple[GGUFModel, tuple[int, ...]]:
        import mlx.core as mx

        loaded = load_gguf(path)
        out = loaded.model(mx.array([[1, 5, 9]]))
        mx.eval(out)
        return loaded, tuple(out.shape)

    loaded, shape = mlx_worker.call(run)
    vocab = len(loaded.metadata["tokenizer.ggml.tokens"])
    assert shape == (1, 3, vocab)
    assert loaded.model.args.tie_word_embeddings is tied
    assert hasattr(loaded.model, "lm_head") is not tied
    assert loaded.quantization == {}
    assert loaded.context_length == 256


def test_missing_file(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError, match=r"nope\.gguf.*does not exist"):
        mlx_worker.call(load_gguf, path)


def test_directory_is_not_a_file(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a file"):
        mlx_worker.call(load_gguf, tmp_path)


def test_not_a_gguf(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("this is not a model")
    with pytest.raises(ModelLoadError, match=r"model\.gguf is not a GGUF file"):
        mlx_worker.call(load_gguf, path)


def test_truncated_gguf(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 8)
    with pytest.raises(ModelLoadError, match=r"could not read GGUF file .*cut\.gguf"):
        mlx_worker.call(load_gguf, path)


def test_non_llama_architecture(mlx_worker: MLXWorker, write_gguf: Callable[..., Path]) -> None:
    path = write_gguf(arch="gpt2")
    with pytest.raises(ModelLoadError, match=r"tiny-gpt2\.gguf.*architecture 'gpt2'"):
        mlx_worker.call(load_gguf, path)


def test_missing_hyperparameter(mlx_worker: MLXWorker, write_gguf: Callable[..., Path]) -> None:
    path = write_gguf(drop=("llama.block_count",))
    with pytest.raises(ModelLoadError, match="llama.block_count"):
        mlx_worker.call(load_gguf, path)


def test_missing_tensor(mlx_worker: MLXWorker, write_gguf: Callable[..., Path]) -> None:
    path = write_gguf(drop=("blk.1.ffn_up.weight",))
    with pytest.raises(ModelLoadError, match="do not match a llama model"):
        mlx_worker.call(load_gguf, path)
