"""The compiled attention kernels (app/llm/attend.c), when `make setup` built them
(app/llm/native.py): decode attention (`KERNEL`) and a prompt chunk's causal softmax
(`SOFTMAX`). Without them numpy serves (app/llm/cpu_kernels.py, app/llm/cpu_prefill.py), slower
and the same to float32 rounding.
"""

from __future__ import annotations

import ctypes

from app.llm.native import HERE, load

LIBRARY = HERE / "_attend.so"
# attend.c's fixed buffers and 8-float lanes: a model with wider heads (or not a multiple of 8),
# or more query heads per KV head, decodes with the numpy kernel
MAX_HEAD_DIM, MAX_REP = 256, 16

_i, _p = ctypes.c_int, ctypes.c_void_p
KERNEL = load(
    LIBRARY.name, "memento_attend_decode", [_i, _i, _i, _i, ctypes.c_float] + [_p] * 8, _i
)
_threads = load(LIBRARY.name, "memento_attend_threads", [], _i)
THREADS = _threads() if _threads is not None else 1  # each needs its own scratch
# rows, n, scores, row stride, rep, len0, sums
SOFTMAX = load(LIBRARY.name, "memento_softmax_causal", [_i, _i, _p, _i, _i, _i, _p], None)


def description() -> str:
    """Which kernel serves decode attention, for the startup log."""
    return f"compiled ({LIBRARY.name})" if KERNEL is not None else "numpy"
