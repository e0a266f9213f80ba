"""The compiled decode attention (app/llm/attend.c) computes what the numpy kernel computes: the
same outputs (float32 rounding aside: its sums run in 8 lanes), the same keys and values written
at the same positions, offsets moved on by one, for any mix of cache lengths, head shapes and
rows; shapes it cannot serve go to numpy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import pytest

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm import attend_native, cpu_kernels, cpu_prefill  # noqa: E402
from app.llm.cpu_kernels import Layer, attend_decoded  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402

T = TypeVar("T")


@dataclass
class Heads:
    """The part of a `Layer` attention reads."""

    n_heads: int
    n_kv: int
    head_dim: int
    scale: float


def _on(worker: MLXWorker, fn: Callable[[], T]) -> T:
    return worker.call(fn)


def _caches(lengths: list[int], n_kv: int, d: int, rng: np.random.Generator) -> list[KVCache]:
    caches = []
    for n in lengths:
        cache = KVCache()
        if n:
            kv = rng.standard_normal((2, 1, n_kv, n, d), dtype=np.float32)
            cache.update_and_fetch(mx.array(kv[0]), mx.array(kv[1]))
            mx.eval(cache.keys, cache.values)
        caches.append(cache)
    return caches


def _attend(
    heads: Heads, lengths: list[int], rows: list[int], seed: int, total_rows: int
) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
    """attend_decoded over fresh caches: the output rows and each cache's offset, keys, values."""
    rng = np.random.default_rng(seed)
    caches = _caches(lengths, heads.n_kv, heads.head_dim, rng)
    width = heads.n_heads + heads.n_kv
    qk = rng.standard_normal((total_rows, width, heads.head_dim), dtype=np.float32)
    # values as the layers pass them: a view into the fused q|k|v rows
    qkv = rng.standard_normal((total_rows, width + heads.n_kv, heads.head_dim), dtype=np.float32)
    vals = qkv[:, width:]
    out = np.full((total_rows, heads.n_heads * heads.head_dim), np.nan, dtype=np.float32)
    attend_decoded(cast(Layer, heads), caches, rows, qk, vals, out)
    kept = []
    for c in caches:
        keys, values = c.keys_and_values()
        kept.append((c.offset, np.array(keys), np.array(values)))
    return out, kept


def _both(
    monkeypatch: pytest.MonkeyPatch, worker: MLXWorker, *args: object
) -> tuple[tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]], ...]:
    compiled = _on(worker, lambda: _attend(*args))  # type: ignore[arg-type]
    monkeypatch.setattr(cpu_kernels, "KERNEL", None)
    numpy = _on(worker, lambda: _attend(*args))  # type: ignore[arg-type]
    return compiled, numpy


def test_make_setup_built_the_kernel() -> None:
    assert attend_native.KERNEL is not None, f"make setup builds {attend_native.LIBRARY}"


@pytest.mark.parametrize(
    ("heads", "lengths", "rows"),
    [
        # SmolLM2-135M: 9 query heads over 3 KV heads of 64; lengths around the 4- and
        # 8-position blocks, an empty cache, one past KVCache's 256-token step (it grows)
        (Heads(9, 3, 64, 0.125), [0, 1, 3, 4, 7, 8, 9, 100, 256, 551], list(range(10))),
        # rows interleaved with a prompt chunk's rows, as in a mixed batch
        (Heads(9, 3, 64, 0.125), [5, 33, 70], [0, 4, 9]),
        (Heads(8, 2, 32, 32**-0.5), [1, 17, 40], [2, 1, 0]),  # other head sizes
        (Heads(4, 4, 128, 128**-0.5), [12, 300], [0, 1]),  # no grouping
        (Heads(16, 1, 16, 0.25), [6], [0]),  # 16 query heads on one KV head
    ],
)
def test_compiled_matches_numpy(
    monkeypatch: pytest.MonkeyPatch,
    mlx_worker: MLXWorker,
    heads: Heads,
    lengths: list[int],
    rows: list[int],
) -> None:
    assert attend_native.KERNEL is not None
    total = max(rows) + 1
    both = _both(monkeypatch, mlx_worker, heads, lengths, rows, 7, total)
    (out_c, kept_c), (out_n, kept_n) = both
    np.testing.assert_allclose(out_c[rows], out_n[rows], rtol=1e-5, atol=1e-6)
    other = [r for r in range(total) if r not in rows]
    assert np.isnan(out_c[other]).all(), "rows of prompt chunks are not touched"
    for (off_c, k_c, v_c), (off_n, k_n, v_n), n in zip(kept_c, kept_n, lengths, strict=True):
        assert off_c == off_n == n + 1
        np.testing.assert_array_equal(k_c, k_n)  # copied, not computed: bit for bit
        np.testing.assert_array_equal(v_c, v_n)


def test_a_sequence_attends_alike_alone_and_among_others(mlx_worker: MLXWorker) -> None:
    """Sequences are split between threads: each one's output is the same, bit for bit,
    whichever thread took it and whatever else shared the call."""
    assert attend_native.KERNEL is not None
    heads, lengths = Heads(9, 3, 64, 0.125), [3, 600, 17, 250, 1, 90, 400]
    rng = np.random.default_rng(11)
    qk = rng.standard_normal((len(lengths), 12, 64), dtype=np.float32)
    vals = rng.standard_normal((len(lengths), 3, 64), dtype=np.float32)

    def run(which: list[int]) -> np.ndarray:
        caches = _caches(lengths, 3, 64, np.random.default_rng(5))  # the same every run
        out = np.zeros((len(lengths), 9 * 64), dtype=np.float32)
        attend_decoded(cast(Layer, heads), [caches[i] for i in which], which, qk, vals, out)
        return out

    together = _on(mlx_worker, lambda: run(list(range(len(lengths)))))
    for i in range(len(lengths)):
        alone = _on(mlx_worker, lambda i=i: run([i]))
        np.testing.assert_array_equal(alone[i], together[i])


def test_far_apart_scores_weigh_nothing_and_stay_finite(
    monkeypatch: pytest.MonkeyPatch, mlx_worker: MLXWorker
) -> None:
    """Scores 100s apart: every weight but the largest underflows; no inf, no NaN."""
    heads = Heads(9, 3, 64, 40.0)
    (out_c, _), (out_n, _) = _both(monkeypatch, mlx_worker, heads, [50, 9], [0, 1], 3, 2)
    assert np.isfinite(out_c).all()
    np.testing.assert_allclose(out_c, out_n, rtol=1e-5, atol=1e-6)


def test_shapes_the_kernel_cannot_serve_go_to_numpy(
    monkeypatch: pytest.MonkeyPatch, mlx_worker: MLXWorker
) -> None:
    def refuse(*_: object) -> int:
        raise AssertionError("the compiled kernel was called")

    monkeypatch.setattr(cpu_kernels, "KERNEL", refuse)
    for heads in (Heads(6, 3, 12, 0.3), Heads(9, 3, 264, 0.06), Heads(34, 2, 8, 0.3)):
        out, kept = _on(mlx_worker, lambda h=heads: _attend(h, [3, 10], [0, 1], 1, 2))
        assert np.isfinite(out).all() and [k[0] for k in kept] == [4, 11]


@pytest.mark.parametrize(
    ("rows", "rep", "first", "n"),
    [(1, 1, 0, 1), (27, 3, 40, 49), (192, 3, 2400, 2464), (8, 4, 5, 7)],
)
def test_the_compiled_causal_softmax_is_numpys(
    rows: int, rep: int, first: int, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt chunk's block of queries: the same weights and sums as the numpy softmax, to
    float32 rounding, and exactly 0 for every key past a query's own position."""
    assert attend_native.SOFTMAX is not None, f"make setup builds {attend_native.LIBRARY}"
    rng = np.random.default_rng(rows + n)
    scores = rng.standard_normal((rows, n), dtype=np.float32) * 4
    queries = rows // rep
    mask = cpu_prefill.causal_mask(n - first + queries)[:queries, None, :]  # the block's part
    mask = np.ascontiguousarray(mask[:, :, : n - first])
    compiled = scores.copy()
    total = cpu_prefill._softmax(compiled, rep, first, mask)
    monkeypatch.setattr(cpu_prefill, "SOFTMAX", None)
    plain = scores.copy()
    want = cpu_prefill._softmax(plain, rep, first, mask)
    np.testing.assert_allclose(total, want, rtol=1e-5)
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-7)
    for r in range(rows):
        seen = first + 1 + r // rep
        assert not compiled[r, seen:].any() and compiled[r, :seen].all()
