"""GET /healthz: is the service up, and on what."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Svc
from app.errors import ServiceStarting
from app.schemas import Health
from app.version import VERSION

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(services: Svc) -> Health:
    engine, store = services.engine, services.store
    if engine is None or store is None:
        raise ServiceStarting("the service is starting")
    return Health(
        status="ok",
        model_id=engine.model_id,
        context_window=engine.context_window,
        backend=engine.backend,
        store=store.backend,
        vector=services.vector_backend(),
        blas=services.blas,
        version=VERSION,
        max_tokens_limit=services.settings.max_tokens_limit,
    )
