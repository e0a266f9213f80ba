"""The compiled many-row GEMM (app/llm/gemm.c) computes x @ w and x @ w.T as numpy does (float32
rounding aside), for any row count, tails of panels and row strides; a row's result does not
depend on the rows beside it; shapes it cannot serve go to OpenBLAS."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pytest

from app.blas import load_blas

load_blas()

import numpy as np  # noqa: E402

from app.llm import cpu_kernels, gemm_native  # noqa: E402
from app.llm.cpu_kernels import gemm  # noqa: E402


def _exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ w.astype(np.float64)


def _close(got: np.ndarray, want: np.ndarray, k: int) -> None:
    # float32 sums of k products of unit-variance numbers: error grows like sqrt(k) ulps
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * k)


def test_make_setup_built_the_library_with_threads() -> None:
    assert gemm_native.SERVES, f"make setup builds {gemm_native.LIBRARY} with OpenMP"
    assert "compiled" in gemm_native.description()


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not Path("/proc/cpuinfo").exists(), reason="x86 Linux"
)
def test_the_tiles_fit_this_machine_s_registers() -> None:
    # a vector wider than the machine's registers, or more sums than it has registers, ran the
    # kernel through the stack: 10-30x slower, the same results (an AVX2 machine, 64-byte vectors)
    shape = gemm_native.geometry()
    assert shape is not None
    width, rows, panel, wide = shape
    flags = _cpu_flags()
    want, registers = (16, 32) if "avx512f" in flags else (8, 16) if "avx" in flags else (4, 16)
    assert width == want, f"make setup builds {gemm_native.LIBRARY} with -march=native"
    assert rows * panel + panel + 1 <= registers and wide + 2 <= registers
    assert f"{width}-float vectors" in gemm_native.description()


@pytest.mark.parametrize("m", [1, 2, 7, 8, 9, 16, 17, 33])
@pytest.mark.parametrize("n", [16, 48, 64, 96 + 32, 960])  # panels of 48 and vector tails
@pytest.mark.parametrize("k", [1, 5, 576])
def test_x_at_w_matches_numpy(m: int, n: int, k: int) -> None:
    rng = np.random.default_rng(m * 1000 + n + k)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((k, n), dtype=np.float32)
    _close(gemm(x, w, trans_b=False), _exact(x, w), k)


@pytest.mark.parametrize("m", [1, 3, 8, 13, 192])
@pytest.mark.parametrize("n", [1, 15, 47, 48, 49, 301])  # cached positions: any count
@pytest.mark.parametrize("k", [8, 64, 512])
def test_x_at_w_transposed_matches_numpy(m: int, n: int, k: int) -> None:
    rng = np.random.default_rng(m * 1000 + n + k)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    _close(gemm(x, w, trans_b=True), _exact(x, w.T), k)


def test_rows_with_a_stride_read_as_numpy_reads_them() -> None:
    """Slices of larger buffers (a KV cache's keys, a block of queries) are read in place."""
    rng = np.random.default_rng(3)
    big_x = rng.standard_normal((20, 100), dtype=np.float32)
    big_w = rng.standard_normal((70, 200), dtype=np.float32)
    x, w = big_x[2:13, 10:74], big_w[5:69, 16:160]  # (11, 64) and (64, 144), strided rows
    _close(gemm(x, w, trans_b=False), _exact(x, w), 64)
    keys = big_w[:37, :64]  # (37, 64): 37 cached keys of a 64-wide head, row stride 200
    _close(gemm(x, keys, trans_b=True), _exact(x, keys.T), 64)


@pytest.mark.parametrize("trans_b", [False, True])
def test_a_row_is_the_same_alone_and_among_others(trans_b: bool) -> None:
    """Each output sums its products in k order whatever the row count: a sequence decodes
    alike in a batch of 1 and of 19, bit for bit."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((19, 512), dtype=np.float32)
    w = rng.standard_normal((960, 512) if trans_b else (512, 960), dtype=np.float32)
    together = gemm(x, w, trans_b)
    for i in (0, 7, 8, 18):
        assert np.array_equal(gemm(x[i : i + 1], w, trans_b)[0], together[i])


def test_what_it_cannot_serve_goes_to_openblas(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[int, int, int]] = []

    def record(kernel: Any) -> Any:
        def call(m: int, k: int, n: int, *rest: int) -> Any:
            served.append((m, k, n))
            return kernel(m, k, n, *rest)

        return call

    monkeypatch.setattr(gemm_native, "KERNEL", record(gemm_native.KERNEL))
    monkeypatch.setattr(gemm_native, "KERNEL_NT", record(gemm_native.KERNEL_NT))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 600), dtype=np.float32)
    w = rng.standard_normal((600, 40), dtype=np.float32)  # 40 columns: not whole vectors
    _close(gemm(x, w, trans_b=False), _exact(x, w), 600)
    keys = rng.standard_normal((9, 600), dtype=np.float32)  # rows longer than MAX_NT_K
    assert keys.shape[1] > gemm_native.MAX_NT_K
    _close(gemm(x, keys, trans_b=True), _exact(x, keys.T), 600)
    assert served == []
    gemm(x, w[:, :32], trans_b=False)
    gemm(x[:, :64], keys[:, :64], trans_b=True)
    assert served == [(4, 600, 32), (4, 64, 9)]


def _turned_off(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w with the compiled kernel turned off (as a comparison does), then back on."""
    assert not cpu_kernels.set_native_gemm(False)
    try:
        return gemm(x, w, trans_b=False)
    finally:
        assert cpu_kernels.set_native_gemm(True)


def test_turned_off_openblas_computes_the_same() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 576), dtype=np.float32)
    w = rng.standard_normal((576, 960), dtype=np.float32)
    on, off = gemm(x, w, trans_b=False), _turned_off(x, w)
    assert not np.array_equal(on, off)  # another kernel: other rounding
    _close(on, off.astype(np.float64), 576)


def _half_weights(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """float16 weights of every magnitude float16 has, subnormals, zeros and extremes included."""
    scale = rng.choice([1e-7, 1e-4, 1e-2, 1.0, 300.0], size=(k, n))
    w = (rng.standard_normal((k, n)) * scale).astype(np.float16)
    w.flat[:6] = [0.0, -0.0, 6e-8, -6e-8, 65504.0, -65504.0]
    return w


@pytest.mark.parametrize("m", [1, 2, 8, 17])
@pytest.mark.parametrize("n", [16, 48, 960])
def test_float16_weights_give_the_float32_sums_bit_for_bit(m: int, n: int) -> None:
    assert gemm_native.HALF, f"make setup builds {gemm_native.LIBRARY} with memento_gemm_f16"
    rng = np.random.default_rng(m * 100 + n)
    w = _half_weights(rng, 576, n)
    x = rng.standard_normal((m, 576), dtype=np.float32)
    assert np.array_equal(gemm(x, w, trans_b=False), gemm(x, w.astype(np.float32), trans_b=False))
    # a slice of the columns: rows with a stride, as a fused matrix's parts would be read
    part = w[:, : n // 2 // 16 * 16 or 16]
    assert np.array_equal(
        gemm(x, part, trans_b=False), gemm(x, part.astype(np.float32), trans_b=False)
    )


def test_float16_weights_the_kernel_cannot_serve_are_converted() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 64), dtype=np.float32)
    w = _half_weights(rng, 64, 40)  # 40 columns: not whole vectors
    assert np.array_equal(gemm(x, w, trans_b=False), gemm(x, w.astype(np.float32), trans_b=False))
    w = _half_weights(rng, 64, 48)
    on, off = gemm(x, w, trans_b=False), _turned_off(x, w)
    np.testing.assert_allclose(off, _exact(x, w.astype(np.float32)), rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=1e-2)
