"""The compiled decode attention (app/llm/attend.c), when `make setup` built it.

Loaded with ctypes, as the BLAS is (app/blas.py): no Python extension module, so no build step
in the package itself; without the library (no C compiler, a plain `pip install`) the numpy
kernel in app/llm/cpu_kernels.py serves instead, slower at many sequences and the same to
float32 rounding.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_attend.so")
# attend.c's fixed buffers and 8-float lanes: a model with wider heads (or not a multiple of 8),
# or more query heads per KV head, decodes with the numpy kernel
MAX_HEAD_DIM, MAX_REP = 256, 16


def _load(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        fn = ctypes.CDLL(str(path)).memento_attend_decode
    except (OSError, AttributeError) as exc:
        log.warning("decode attention: %s did not load (%s); numpy serves instead", path, exc)
        return None
    i, p = ctypes.c_int, ctypes.c_void_p
    fn.argtypes = [i, i, i, i, ctypes.c_float, p, p, p, p, p, p, p, p]
    fn.restype = i
    return fn


KERNEL = _load(LIBRARY)


def description() -> str:
    """Which kernel serves decode attention, for the startup log."""
    return f"compiled ({LIBRARY.name})" if KERNEL is not None else "numpy"
