"""The type checker passes (issue 18): mypy on the paths and at the levels pyproject.toml's
[tool.mypy] sets (memory/ and app/service/ strict, the rest of app/ at check_untyped_defs), so
`make test` in CI fails on a type error as `make lint` does.

A cold run takes about a minute on a 2-core machine; .mypy_cache makes later runs seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"
