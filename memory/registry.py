"""Strategies by name, with their typed params validated up front."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from memory.base import MemoryDeps, MemoryStrategy, StrategyConfigError, StrategyParams
from memory.strategies import (
    BufferStrategy,
    HybridStrategy,
    SummaryBufferStrategy,
    SummaryStrategy,
    TokenBufferStrategy,
    VectorStrategy,
    WindowStrategy,
)

STRATEGIES: dict[str, type[MemoryStrategy[Any]]] = {
    cls.name: cls
    for cls in (
        BufferStrategy,
        WindowStrategy,
        TokenBufferStrategy,
        SummaryStrategy,
        SummaryBufferStrategy,
        VectorStrategy,
        HybridStrategy,
    )
}


class UnknownStrategyError(StrategyConfigError, KeyError):
    def __init__(self, name: str):
        StrategyConfigError.__init__(
            self,
            f"unknown memory strategy {name!r}; valid strategies: {', '.join(available())}",
            field="strategy",
        )
        self.name = name

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


def available() -> list[str]:
    return sorted(STRATEGIES)


def get(name: str) -> type[MemoryStrategy[Any]]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(name) from None


def validate_params(name: str, params: Mapping[str, Any] | None = None) -> StrategyParams:
    """The strategy's Params, validated: pydantic.ValidationError names a bad or unknown field."""
    validated: StrategyParams = get(name).Params.model_validate(dict(params or {}))
    return validated


def describe() -> dict[str, dict[str, Any]]:
    """name -> JSON schema of its params (for /docs, the CLI and the web page)."""
    return {name: STRATEGIES[name].Params.model_json_schema() for name in available()}


def create(
    name: str, params: Mapping[str, Any] | BaseModel | None, deps: MemoryDeps
) -> MemoryStrategy[Any]:
    cls = get(name)
    if isinstance(params, cls.Params):
        return cls(params, deps)
    if isinstance(params, BaseModel):  # another strategy's params: re-validated as this one's
        params = params.model_dump()
    return cls(validate_params(name, params), deps)
