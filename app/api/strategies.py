"""GET /v1/strategies: the memory strategies, their params, defaults and bounds, read from the
registry (each strategy's pydantic Params), so clients never hard-code them.

`service_params` lists the session params the service itself takes with any strategy
(`budget_tokens`, `scope`..., see app.session_memory.SERVICE_PARAMS), described from the request
model that validates them (MemoryConfig): they are not a strategy's, so they are not repeated
per strategy.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.schemas import ERRORS, MemoryConfig
from app.session_memory import SERVICE_PARAMS
from memory import registry

router = APIRouter(prefix="/v1/strategies", tags=["strategies"], responses=ERRORS)

Number = int | float


class ParamInfo(BaseModel):
    """One param. Bounds and `enum` appear only when the param has them."""

    name: str
    type: str = Field(description="JSON type: integer, number, string or boolean")
    default: Any = Field(description="the value a session gets when it does not set the param")
    description: str = ""
    nullable: bool = Field(default=False, description="null is accepted (see the description)")
    minimum: Number | None = None
    maximum: Number | None = None
    exclusive_minimum: Number | None = None
    exclusive_maximum: Number | None = None
    enum: list[Any] | None = None


class StrategyInfo(BaseModel):
    name: str
    description: str = Field(description="the first paragraph of the strategy's docstring")
    params: list[ParamInfo]


class StrategyCatalog(BaseModel):
    strategies: list[StrategyInfo]
    service_params: list[ParamInfo] = Field(
        description="params every strategy accepts, handled by the service (not the strategy)"
    )


_BOUNDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "enum": "enum",
}


def param_info(name: str, prop: dict[str, Any]) -> ParamInfo:
    """One property of a pydantic JSON schema, flattened: `X | None` becomes X, nullable."""
    variants = prop.get("anyOf", [prop])
    kinds = [v for v in variants if v.get("type") != "null"]
    kind = kinds[0] if len(kinds) == 1 else {}
    # only the keys present are set, so the route leaves absent bounds out of the JSON
    fields: dict[str, Any] = {
        "name": name,
        "type": kind.get("type") or prop.get("type") or "any",
        "default": prop.get("default"),
        "description": prop.get("description", ""),
    }
    if len(kinds) < len(variants):
        fields["nullable"] = True
    for key, field in _BOUNDS.items():
        if key in kind:
            fields[field] = kind[key]
    return ParamInfo(**fields)


def first_paragraph(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


@cache
def catalog() -> StrategyCatalog:
    """Built once (the registry is fixed for the life of the process), in the registry's own
    order: from the simplest strategy to the most complete."""
    schemas = registry.describe()
    strategies = [
        StrategyInfo(
            name=name,
            description=first_paragraph(registry.get(name)),
            params=[param_info(p, prop) for p, prop in schemas[name]["properties"].items()],
        )
        for name in registry.STRATEGIES
    ]
    memory = MemoryConfig.model_json_schema()["properties"]
    service = [param_info(p, memory[p]) for p in SERVICE_PARAMS]
    return StrategyCatalog(strategies=strategies, service_params=service)


@router.get("", response_model=StrategyCatalog, response_model_exclude_unset=True)
async def list_strategies() -> StrategyCatalog:
    return catalog()
