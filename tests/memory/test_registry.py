"""The registry: names, typed params, clear errors."""

from __future__ import annotations

import pytest
from memory_fakes import FakeLLM, deps
from pydantic import ValidationError

from memory import registry
from memory.base import MemoryDeps, MemoryStrategy, StrategyConfigError


def test_every_strategy_is_registered_under_its_name() -> None:
    assert registry.available() == [
        "buffer", "hybrid", "summary", "summary_buffer", "token_buffer", "vector", "window",
    ]  # fmt: skip
    for name in registry.available():
        strategy = registry.create(name, {}, deps())
        assert isinstance(strategy, MemoryStrategy)
        assert strategy.name == name


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(StrategyConfigError) as err:
        registry.create("sumary", {}, deps())
    assert "'sumary'" in str(err.value)
    assert "summary_buffer" in str(err.value) and "hybrid" in str(err.value)
    assert err.value.field == "strategy"


def test_a_misspelled_param_is_named() -> None:
    with pytest.raises(ValidationError) as err:
        registry.validate_params("window", {"kk": 3})
    assert err.value.errors()[0]["loc"] == ("kk",)
    assert "extra" in err.value.errors()[0]["type"]


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("window", {"k": 0}, "k"),
        ("token_buffer", {"max_tokens": "lots"}, "max_tokens"),
        ("token_buffer", {"evict_to": 1.5}, "evict_to"),
        ("summary", {"summarizer": "gpt"}, "summarizer"),
        ("hybrid", {"recall_k": -1}, "recall_k"),
    ],
)
def test_bad_values_name_their_field(name: str, params: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        registry.create(name, params, deps())
    assert err.value.errors()[0]["loc"] == (field,)


def test_params_are_typed_and_defaulted() -> None:
    p = registry.validate_params("window", {"k": "4"})
    assert p.k == 4 and p.evict_to == 0.7  # type: ignore[attr-defined]
    strategy = registry.create("window", p, deps())
    assert strategy.params is p


def test_recall_strategies_need_a_recaller() -> None:
    for name in ("vector", "hybrid"):
        with pytest.raises(StrategyConfigError, match="recaller"):
            registry.create(name, {}, MemoryDeps(llm=FakeLLM()))
    registry.create("summary_buffer", {}, MemoryDeps(llm=FakeLLM()))


def test_describe_gives_a_schema_per_strategy() -> None:
    schemas = registry.describe()
    assert set(schemas) == set(registry.available())
    assert "k" in schemas["window"]["properties"]
