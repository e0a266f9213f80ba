"""Choosing and loading the model from Settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import Settings
from app.llm.embedded import default_gguf_path
from app.llm.factory import load_engine
from app.llm.types import GenerationParams, ModelLoadError
from app.llm.worker import MLXWorker


def test_default_gguf_is_the_embedded_smollm2() -> None:
    path = default_gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    assert "SmolLM2-135M-Instruct" in path.name


def test_engine_fixture_is_the_default_model(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.model_id == default_gguf_path().stem
    assert engine.context_window == 8192
    assert engine.info["format"] == "gguf"
    assert engine.info["quantized_bits"] == [4, 8]
    assert engine.info["blas"]


def test_gguf_path_with_context_override(
    mlx_worker: MLXWorker, write_gguf: Callable[..., Path]
) -> None:
    path = write_gguf()
    engine = load_engine(Settings(model=str(path), context_window=64), mlx_worker)
    assert engine.model_id == "tiny-llama"
    assert engine.context_window == 64

    async def run() -> list:
        msgs = [{"role": "user", "content": "the"}]
        return [c async for c in engine.stream(msgs, GenerationParams(max_tokens=4))]

    chunks = asyncio.run(run())
    assert chunks[-1].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == engine.count(
        [{"role": "user", "content": "the"}]
    )


def test_missing_gguf_names_the_file(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError, match=r"missing\.gguf does not exist"):
        load_engine(Settings(model=str(missing)), mlx_worker)


def test_missing_model_dir(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_engine(Settings(model=str(tmp_path / "no-such-dir")), mlx_worker)


def test_uncached_hf_id_offline_is_a_clear_error(
    mlx_worker: MLXWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"memento-test/not-a-real-model.*HF_HUB_OFFLINE"):
        load_engine(Settings(model="memento-test/not-a-real-model"), mlx_worker)


def test_directory_that_is_not_a_model(mlx_worker: MLXWorker, tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_engine(Settings(model=str(tmp_path)), mlx_worker)
