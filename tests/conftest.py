"""Shared fixtures. Everything MLX in a test process runs on one MLXWorker thread."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.llm.worker import MLXWorker  # noqa: E402

if TYPE_CHECKING:
    from app.llm.mlx_engine import MLXEngine


# Long runs selected only by name (`make fuzz` / `make crash` / `make chaos`: -m fuzz...);
# otherwise skipped, so `make test` (which selects by `slow`) never pays for them.
OPT_IN = {
    "fuzz": "the long schemathesis run",
    "crash": "the 20-round kill -9 loop",
    "chaos": "the soak run: thousands of turns, resources sampled",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, what in OPT_IN.items():
        config.addinivalue_line("markers", f"{name}: {what} (opt-in: pytest -m {name})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = config.getoption("markexpr") or ""
    for item in items:
        for name in OPT_IN:
            if item.get_closest_marker(name) and name not in selected:
                item.add_marker(pytest.mark.skip(reason=f"opt-in: run with -m {name}"))


@pytest.fixture(scope="session")
def mlx_worker() -> Iterator[MLXWorker]:
    worker = MLXWorker(name="mlx-tests")
    yield worker
    worker.shutdown()


@pytest.fixture(scope="session")
def engine(mlx_worker: MLXWorker) -> Iterator[MLXEngine]:
    """The real MLXEngine on the embedded SmolLM2 GGUF, shared by the whole test session."""
    from app.config import Settings
    from app.llm.factory import load_engine

    eng = load_engine(Settings(model=None, context_window=None), mlx_worker)
    yield eng
    mlx_worker.call(eng.prompt_caches.clear)
