"""Load an optimized BLAS before MLX on Linux.

The Linux `mlx-cpu` wheel resolves its BLAS symbols (cblas_sgemm, ...) against the reference
BLAS, whose float32 matmul is ~35x slower than OpenBLAS. Loading Debian's OpenBLAS with
RTLD_GLOBAL before the first `import mlx.core` makes the dynamic linker bind those symbols to
OpenBLAS instead. This only works if it happens first, so every module of ours that imports mlx
calls `load_blas()` before doing so.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import platform
import sys
import sysconfig

log = logging.getLogger(__name__)

FIX_HINT = "sudo apt-get install libopenblas0-pthread"

_result: str | None = None


def _candidates() -> list[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    roots = [f"/usr/lib/{multiarch}", "/usr/lib64", "/usr/lib"]
    paths: list[str] = []
    for root in roots:
        # The pthread flavour first: the un-suffixed name may point at the serial/openmp build.
        paths.append(f"{root}/openblas-pthread/libopenblas.so.0")
        paths.append(f"{root}/libopenblas.so.0")
        paths.extend(sorted(glob.glob(f"{root}/libopenblasp-r*.so")))
    return paths


def _kernels(path: str) -> str:
    """The kernels a DYNAMIC_ARCH OpenBLAS picked for this CPU, for the log line: kernels of
    two CPUs may sum float32 in other orders, enough to flip a greedy token, so benchmark
    replies are compared on one machine."""
    try:
        lib = ctypes.CDLL(path)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return f", {lib.openblas_get_corename().decode()} kernels"
    except (OSError, AttributeError):
        return ""


def load_blas() -> str:
    """Make MLX use OpenBLAS where possible; return a one-line description of the BLAS in use.

    Idempotent. Must run before the first `import mlx.core` in the process to have any effect.
    """
    global _result
    if _result is not None:
        return _result
    if sys.platform != "linux":
        _result = "Accelerate" if sys.platform == "darwin" else "mlx default BLAS"
        log.info("BLAS: %s", _result)
        return _result

    cpus = os.cpu_count() or 1
    # Measured on 2 cores: 2 threads give 10-11 tok/s decode against 7.5-8.4 with 1.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(min(2, cpus)))
    late = "mlx.core" in sys.modules
    for path in _candidates():
        if not os.path.exists(path):
            continue
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            log.debug("could not load %s: %s", path, exc)
            continue
        threads = os.environ["OPENBLAS_NUM_THREADS"]
        _result = f"OpenBLAS ({os.path.realpath(path)}, {threads} threads{_kernels(path)})"
        if late:
            log.warning(
                "OpenBLAS loaded after mlx.core was imported: MLX may still use the reference "
                "BLAS. Call app.blas.load_blas() before importing mlx."
            )
        log.info("BLAS: %s", _result)
        return _result

    _result = "reference BLAS (slow)"
    log.warning(
        "OpenBLAS not found: MLX falls back to the reference BLAS and float32 matmul is ~35x "
        "slower. Fix: %s",
        FIX_HINT,
    )
    return _result
