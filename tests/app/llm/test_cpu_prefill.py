"""The numpy prefill path (app/llm/cpu_prefill.py) computes what MLX's llama prefill computes:
the same logits (float32 rounding aside) and the same greedy continuation, for a short prompt, a
~1,500-token prompt prefilled in chunks, and a new chunk at a large KV offset after a cached
prefix. Both paths run on the real embedded SmolLM2 model of the session `engine`, switched with
`set_numpy_prefill`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache, make_prompt_cache  # noqa: E402

from app.llm import cpu_kernels  # noqa: E402
from app.llm.cpu_fast import CPUFastModel, set_numpy_prefill  # noqa: E402
from app.llm.mlx_engine import MLXEngine  # noqa: E402
from app.llm.types import GenerationParams  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402

ATOL = 1e-3
STEP = 512  # MLXEngine's default prefill_step_size
FILLER = (
    "Section {i}. The committee reviewed the quarterly report on river water quality, noting "
    "that sample {i} showed nitrate levels within limits while turbidity rose after the storms. "
)


def _report(engine: MLXEngine, target: int) -> list[int]:
    """Templated chat ids of about `target` tokens of real text."""
    parts: list[str] = []
    while True:
        msgs = [{"role": "user", "content": "".join(parts) + "\nSummarise the report."}]
        ids = engine.encode_prompt(msgs)
        if len(ids) >= target:
            return ids
        parts.append(FILLER.format(i=len(parts) + 1))


def _prefill(model: nn.Module, ids: list[int], cache: list[Any]) -> np.ndarray:
    """Feed `ids` in MLXEngine-sized chunks; logits of every position of the last chunk."""
    out = None
    for i in range(0, len(ids), STEP):
        out = model(mx.array(ids[i : i + STEP])[None], cache=cache)
    assert out is not None
    return np.array(out[0].astype(mx.float32))


def _greedy(model: nn.Module, logits: np.ndarray, cache: list[Any], steps: int) -> list[int]:
    tokens = [int(np.argmax(logits))]
    for _ in range(steps - 1):
        out = model(mx.array([[tokens[-1]]]), cache=cache)
        tokens.append(int(np.argmax(np.array(out[0, -1]))))
    return tokens


Session = Callable[[nn.Module], tuple[np.ndarray, list[int]]]


@pytest.fixture
def both_paths(engine: MLXEngine, mlx_worker: MLXWorker) -> Iterator[Callable[[Session], Any]]:
    """run(session) -> (session's result with MLX prefill, with numpy prefill)."""
    model = engine.model
    assert isinstance(model, CPUFastModel)

    def run(session: Session) -> Any:
        def both() -> Any:
            try:
                assert set_numpy_prefill(model, False) is False
                old = session(model)
                assert set_numpy_prefill(model, True) is True
                new = session(model)
            finally:
                set_numpy_prefill(model, True)
            return old, new

        return mlx_worker.call(both)

    yield run
    mlx_worker.call(lambda: set_numpy_prefill(model, True))


def _assert_same(old: tuple[np.ndarray, list[int]], new: tuple[np.ndarray, list[int]]) -> None:
    (old_logits, old_tokens), (new_logits, new_tokens) = old, new
    assert old_logits.shape == new_logits.shape
    assert float(np.abs(old_logits - new_logits).max()) < ATOL
    assert new_tokens == old_tokens


def test_short_prompt(engine: MLXEngine, both_paths: Callable[[Session], Any]) -> None:
    prompt = engine.encode_prompt([{"role": "user", "content": "Write a haiku about the sea."}])

    def session(model: nn.Module) -> tuple[np.ndarray, list[int]]:
        cache = make_prompt_cache(model)
        logits = _prefill(model, prompt, cache)
        return logits, _greedy(model, logits[-1], cache, 64)

    _assert_same(*both_paths(session))


def test_long_prompt_in_chunks(engine: MLXEngine, both_paths: Callable[[Session], Any]) -> None:
    prompt = _report(engine, 1500)

    def session(model: nn.Module) -> tuple[np.ndarray, list[int]]:
        cache = make_prompt_cache(model)
        logits = _prefill(model, prompt, cache)
        assert all(c.offset == len(prompt) for c in cache)
        return logits, _greedy(model, logits[-1], cache, 64)

    _assert_same(*both_paths(session))


def _copy(cache: list[Any]) -> list[KVCache]:
    """A deep copy of a prompt cache, stale entries past its offset included: the numpy path
    writes into the buffers in place, so the copies share no memory."""
    out = []
    for c in cache:
        new = KVCache()
        new.keys, new.values = mx.array(np.array(c.keys)), mx.array(np.array(c.values))
        new.offset = c.offset
        out.append(new)
    return out


def test_chunk_at_large_offset_after_cached_prefix(
    engine: MLXEngine, both_paths: Callable[[Session], Any], mlx_worker: MLXWorker
) -> None:
    """A later turn: ~1.7k cached tokens (prefilled by MLX, then trimmed back as the prompt
    cache does), then a new multi-token chunk; every position of the chunk is compared,
    which checks the causal mask inside the chunk."""
    prefix = _report(engine, 1700)
    turn = engine.encode_prompt(
        [{"role": "user", "content": "Now list the three most worrying samples and why."}]
    )
    model = engine.model

    def cached() -> list[Any]:
        # the same cached prefix for both paths, prefilled once (MLX's prefill is the slow
        # part of this test), each path then starting from its own copy
        cache = make_prompt_cache(model)
        was = model._np_prefiller
        object.__setattr__(model, "_np_prefiller", None)
        try:
            _prefill(model, prefix + turn[:7], cache)
        finally:
            object.__setattr__(model, "_np_prefiller", was)
        for c in cache:
            c.trim(7)
        return cache

    prefilled = mlx_worker.call(cached)

    def session(model: nn.Module) -> tuple[np.ndarray, list[int]]:
        cache = _copy(prefilled)
        logits = _prefill(model, turn, cache)
        assert all(c.offset == len(prefix) + len(turn) for c in cache)
        return logits, _greedy(model, logits[-1], cache, 64)

    _assert_same(*both_paths(session))


async def test_engine_turns_with_kv_reuse_match_the_mlx_path(
    engine: MLXEngine, mlx_worker: MLXWorker
) -> None:
    """Through MLXEngine.stream with a cache_key: a long first turn, then a short second turn
    prefilled at a large offset, give the same text on both paths."""
    model = engine.model
    first = [{"role": "user", "content": "".join(FILLER.format(i=i) for i in range(40))}]
    params = GenerationParams(max_tokens=24)

    async def conversation(numpy_prefill: bool) -> list[str]:
        mlx_worker.call(lambda: set_numpy_prefill(model, numpy_prefill))
        key = f"prefill-{numpy_prefill}-{uuid.uuid4()}"
        msgs, replies = list(first), []
        for turn in range(2):
            chunks = [c async for c in engine.stream(msgs, params, cache_key=key)]
            usage = chunks[-1].usage
            assert usage is not None
            if turn:  # the second turn reused the first turn's KV cache
                assert usage.cached_tokens > 500
            replies.append("".join(c.text for c in chunks))
            msgs += [
                {"role": "assistant", "content": replies[-1]},
                {"role": "user", "content": "Which sample was worst, and why?"},
            ]
        return replies

    try:
        old = await conversation(False)
        new = await conversation(True)
    finally:
        mlx_worker.call(lambda: set_numpy_prefill(model, True))
    assert new == old


def test_cache_growth_matches_kv_cache_update(mlx_worker: MLXWorker) -> None:
    """Chunks written in place grow the buffers exactly as KVCache.update_and_fetch would."""
    from app.llm.cpu_kernels import kv_views

    def check() -> None:
        for start, n in ((0, 3), (0, 300), (250, 10), (256, 1), (100, 700)):
            ours, theirs = KVCache(), KVCache()
            if start:
                fill = mx.ones((1, 2, start, 8))
                ours.update_and_fetch(fill, fill)
                theirs.update_and_fetch(fill, fill)
            kv, _ = kv_views(ours, n_kv=2, head_dim=8, n=n)
            kv[0, :, start : start + n, :] = 2.0
            ours.offset = start + n
            new = mx.full((1, 2, n, 8), 2.0)
            theirs.update_and_fetch(new, new)
            assert ours.keys.shape == theirs.keys.shape
            k_ours, _ = ours.keys_and_values()
            k_theirs, _ = theirs.keys_and_values()
            assert mx.array_equal(k_ours, k_theirs).item()

    mlx_worker.call(check)


def test_gemm_handles_strided_rows() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 12)).astype(np.float32)
    b = rng.standard_normal((7, 4)).astype(np.float32)
    np.testing.assert_allclose(
        cpu_kernels.gemm(a[:, 2:6], b, trans_b=True), a[:, 2:6] @ b.T, rtol=1e-5, atol=1e-5
    )
    c = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        cpu_kernels.gemm(a[:, 2:6], c, trans_b=False), a[:, 2:6] @ c, rtol=1e-5, atol=1e-5
    )
