"""The compiled many-row GEMM (app/llm/gemm.c), when `make setup` built it (app/llm/native.py);
without it, or where it cannot serve, app/llm/cpu_kernels.py `gemm` calls OpenBLAS's
cblas_sgemm as before."""

from __future__ import annotations

import ctypes
import os

from app.llm.native import HERE, load

LIBRARY = HERE / "_gemm.so"
# the output's width must be a multiple of it: every build's vector width (4-16 floats) divides it
LANES = 16

_i, _p = ctypes.c_int, ctypes.c_void_p
_ARGS = [_i, _i, _i, _p, _i, _p, _i, _p, _i]  # M, K, N, x, its row stride, w, its, out, its
KERNEL = load(LIBRARY.name, "memento_gemm", _ARGS, None)  # x @ w, N a multiple of LANES
KERNEL_NT = load(LIBRARY.name, "memento_gemm_nt", _ARGS, _i)  # x @ w.T, K <= MAX_NT_K
# x @ w for a float16 w, its values converted exactly: the same sums as KERNEL on a float32 copy
# (built only where the hardware converts float16 vectors: AVX-512, F16C, arm64)
KERNEL_F16 = load(LIBRARY.name, "memento_gemm_f16", _ARGS, None, optional=True)
MAX_NT_K = 512
_threads = load(LIBRARY.name, "memento_gemm_threads", [], _i)
THREADS = _threads() if _threads is not None else 0
_geometry = load(LIBRARY.name, "memento_gemm_geometry", [_p], None)


def geometry() -> tuple[int, int, int, int] | None:
    """The build's tiles: floats per vector, rows and vectors per tile, the one-row path's
    vectors (gemm.c picks them for the instruction set -march=native found)."""
    if _geometry is None:
        return None
    out = (ctypes.c_int * 4)()
    _geometry(out)
    return (out[0], out[1], out[2], out[3])


# Built without OpenMP it runs on one thread, slower than OpenBLAS's two at many rows: it then
# serves only a one-core machine.
SERVES = KERNEL is not None and KERNEL_NT is not None and min(2, os.cpu_count() or 1) <= THREADS
HALF = SERVES and KERNEL_F16 is not None  # weights may be stored as float16 (cpu_fast)


def description() -> str:
    """Which kernel serves the many-row GEMMs, for the startup log."""
    if not SERVES:
        return "cblas_sgemm"
    shape = geometry()
    tiles = f", {shape[0]}-float vectors, {shape[1]}x{shape[2]} tiles" if shape else ""
    return f"compiled ({LIBRARY.name}, {THREADS} thread{'s' if THREADS != 1 else ''}{tiles})"
