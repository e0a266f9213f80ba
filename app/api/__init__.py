"""The HTTP API: one thin module per resource. `ROUTERS` is what create_app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import (
    context,
    health,
    history,
    lore,
    memory,
    messages,
    openai_compat,
    personas,
    relationships,
    sessions,
    strategies,
)

ROUTERS: list[APIRouter] = [
    health.router,
    personas.router,
    strategies.router,
    sessions.router,
    messages.router,
    history.router,
    context.router,
    memory.router,
    relationships.router,
    lore.router,
    lore.session_router,
    openai_compat.router,
]
