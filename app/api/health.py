"""GET /healthz: is the service up, and on what."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from app.deps import StatusDep
from app.schemas import Health
from app.version import VERSION

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(status: StatusDep) -> Health:
    return Health(status="ok", version=VERSION, **dataclasses.asdict(status))
