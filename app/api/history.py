"""Import past turns into a session without generating (memory observes them)."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.deps import ChatDep, CurrentUser
from app.schemas import ERRORS, HistoryImport, HistoryImported

router = APIRouter(prefix="/v1/sessions", tags=["memory"], responses=ERRORS)


@router.post(
    "/{session_id}/history",
    status_code=status.HTTP_201_CREATED,
    response_model=HistoryImported,
    description="Store past turns as if they had happened (oldest first); summaries and the "
    "vector index catch up in the background. Returns the new message ids in order.",
)
async def import_history(
    session_id: str, body: HistoryImport, user: CurrentUser, chat: ChatDep
) -> HistoryImported:
    records = await chat.import_history(
        user.id, session_id, [(m.role, m.content, m.created_at) for m in body.messages]
    )
    return HistoryImported(ids=[r.id for r in records])
