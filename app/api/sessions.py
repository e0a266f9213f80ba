"""Sessions: create, list, read, rename or change memory strategy, delete, export, import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from app.deps import CurrentUser, MemoryAdminDep, PersonasDep
from app.schemas import ERRORS, DbOffset, SessionCreate, SessionList, SessionOut, SessionPatch
from app.service.memory_admin import SessionView
from app.store.records import SessionRecord
from app.store.transfer import SessionExport

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=ERRORS)


def session_out(s: SessionRecord, greeting: str | None = None) -> SessionOut:
    return SessionOut.model_validate(
        {
            "id": s.id,
            "persona": s.persona_id,
            "title": s.title,
            "memory": {"strategy": s.strategy, **s.memory_params()},
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "greeting": greeting,
        }
    )


def view_out(view: SessionView) -> SessionOut:
    return session_out(view.record, view.greeting)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
async def create_session(
    body: SessionCreate, user: CurrentUser, admin: MemoryAdminDep, personas: PersonasDep
) -> SessionOut:
    view = await admin.create_session(
        user.id, personas, body.persona, body.memory.strategy, body.memory.params(), body.title
    )
    return view_out(view)


@router.get("", response_model=SessionList)
async def list_sessions(
    user: CurrentUser,
    admin: MemoryAdminDep,
    limit: int = Query(default=50, ge=1, le=500),
    offset: Annotated[DbOffset, Query()] = 0,
) -> SessionList:
    records = await admin.list_sessions(user.id, limit, offset)
    return SessionList(sessions=[session_out(r) for r in records])


@router.get("/{session_id}", response_model=SessionOut)
async def get_session(
    session_id: str, user: CurrentUser, admin: MemoryAdminDep, personas: PersonasDep
) -> SessionOut:
    return view_out(await admin.get_session(user.id, session_id, personas))


@router.patch("/{session_id}", response_model=SessionOut)
async def patch_session(
    session_id: str, body: SessionPatch, user: CurrentUser, admin: MemoryAdminDep
) -> SessionOut:
    memory = body.memory
    record = await admin.update_session(
        user.id,
        session_id,
        title=body.title,
        clear_title="title" in body.model_fields_set and body.title is None,
        strategy=None if memory is None else memory.strategy,
        params=None if memory is None else memory.params(),
    )
    return session_out(record)


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(session_id: str, user: CurrentUser, admin: MemoryAdminDep) -> Response:
    await admin.delete_session(user.id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{session_id}/export", response_model=SessionExport)
async def export_session(session_id: str, user: CurrentUser, admin: MemoryAdminDep) -> Any:
    return await admin.export_session(user.id, session_id)


@router.post("/import", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
async def import_session(
    user: CurrentUser,
    admin: MemoryAdminDep,
    personas: PersonasDep,
    body: Annotated[dict[str, Any], Body(description="a session export (GET .../export)")],
) -> SessionOut:
    return session_out(await admin.import_session(user.id, personas, body))
