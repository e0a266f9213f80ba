"""OpenBLAS is loaded before MLX on Linux, or a clear warning says how to get it."""

from __future__ import annotations

import ast
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


def _first_mlx_import_and_load_blas(path: Path) -> tuple[int | None, int | None]:
    tree = ast.parse(path.read_text(), filename=str(path))
    first_mlx = blas_call = None
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if first_mlx is None and any(n.split(".")[0] in ("mlx", "mlx_lm") for n in names):
            first_mlx = node.lineno
        if (
            blas_call is None
            and isinstance(node, (ast.Expr, ast.Assign))
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "load_blas"
        ):
            blas_call = node.lineno
    return first_mlx, blas_call


def test_every_module_loads_blas_before_importing_mlx() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("app", "memory"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if rel.parts[:2] == ("app", "llm"):
                continue  # app/llm/__init__.py loads it before any module of the package
            first_mlx, blas_call = _first_mlx_import_and_load_blas(path)
            if first_mlx is not None and (blas_call is None or blas_call > first_mlx):
                offenders.append(f"{rel}:{first_mlx}")
    assert not offenders, f"call app.blas.load_blas() before importing mlx in: {offenders}"
