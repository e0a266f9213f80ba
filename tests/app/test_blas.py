"""OpenBLAS is loaded before MLX on Linux, or a clear warning says how to get it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from app import blas


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_openblas_is_loaded_when_installed() -> None:
    if not any(os.path.exists(p) for p in blas._candidates()):
        pytest.skip("libopenblas0-pthread is not installed here")
    result = blas.load_blas()
    assert result.startswith("OpenBLAS")
    assert blas.load_blas() is result  # idempotent
    assert "libopenblas" in Path("/proc/self/maps").read_text()
    assert int(os.environ["OPENBLAS_NUM_THREADS"]) >= 1


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_missing_openblas_warns_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(blas, "_result", None)
    monkeypatch.setattr(blas, "_candidates", lambda: ["/nonexistent/libopenblas.so.0"])
    with caplog.at_level(logging.WARNING, logger="app.blas"):
        result = blas.load_blas()
    assert result.startswith("reference BLAS")
    assert blas.FIX_HINT in caplog.text
