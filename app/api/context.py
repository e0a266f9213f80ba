"""The Context inspector: what the model would see now (dry run), or saw for a stored reply."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ChatDep, CurrentUser, MemoryAdminDep
from app.schemas import ERRORS, ContextRequest, DbId
from memory.types import Context

router = APIRouter(prefix="/v1/sessions", tags=["context"], responses=ERRORS)


@router.post(
    "/{session_id}/context",
    response_model=Context,
    description="Dry run: the Context a message with this content would get now. Nothing is "
    "generated or stored.",
)
async def dry_run(
    session_id: str, body: ContextRequest, user: CurrentUser, chat: ChatDep
) -> Context:
    return await chat.dry_run(user.id, session_id, body.content, body.max_tokens)


@router.get("/{session_id}/context/{message_id}", response_model=Context)
async def stored_context(
    session_id: str, message_id: DbId, user: CurrentUser, admin: MemoryAdminDep
) -> Context:
    """The Context that produced the stored reply `message_id`."""
    return await admin.stored_context(user.id, session_id, message_id)
