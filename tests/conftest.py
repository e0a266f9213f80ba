"""Shared fixtures. Everything MLX in a test process runs on one MLXWorker thread."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.llm.worker import MLXWorker  # noqa: E402


@pytest.fixture(scope="session")
def mlx_worker() -> Iterator[MLXWorker]:
    worker = MLXWorker(name="mlx-tests")
    yield worker
    worker.shutdown()
