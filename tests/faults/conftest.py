"""The fault suite (issue 15): second processes, replicas, a remote model, the vector server,
a full disk, user edits. Most cases are fast and run in `make test`; `make chaos` runs all of
them plus the opt-in `chaos` ones (the soak run), which are skipped unless selected with
`-m chaos`, like `make crash`."""

from __future__ import annotations

import pytest

OPT_IN = {"chaos": "the soak run: thousands of turns, resources sampled (opt-in)"}


def pytest_configure(config: pytest.Config) -> None:
    for name, what in OPT_IN.items():
        config.addinivalue_line("markers", f"{name}: {what} (opt-in: pytest -m {name})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = config.getoption("markexpr") or ""
    for item in items:
        for name in OPT_IN:
            if item.get_closest_marker(name) and name not in selected:
                item.add_marker(pytest.mark.skip(reason=f"opt-in: run with -m {name}"))
