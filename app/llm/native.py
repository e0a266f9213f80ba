"""The compiled kernels `make setup` builds beside this package (app/llm/*.c -> app/llm/_*.so).

Loaded with ctypes, as the BLAS is (app/blas.py): no Python extension module, so no build step
in the package itself. Each is optional: without it (no C compiler, a plain `pip install`) the
numpy path serves as before, slower and the same to float32 rounding.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HERE = Path(__file__).parent


def load(
    library: str, symbol: str, argtypes: Sequence[Any], restype: Any, optional: bool = False
) -> Any:
    """`symbol` of app/llm/`library` as a ctypes function, or None when it is not built (or
    does not load: a library built on another machine, say). An `optional` symbol, which some
    builds leave out, is None without a warning when it is missing."""
    path = HERE / library
    if not path.exists():
        return None
    try:
        lib = ctypes.CDLL(str(path))
        if optional and not hasattr(lib, symbol):
            return None
        fn = getattr(lib, symbol)
    except (OSError, AttributeError) as exc:
        log.warning("%s did not load (%s); numpy serves instead", path, exc)
        return None
    fn.argtypes = list(argtypes)
    fn.restype = restype
    return fn
