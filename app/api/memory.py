"""A session's memory: read it, edit the summary and pinned facts, forget items."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from app.deps import CurrentUser, MemoryAdminDep
from app.schemas import ERRORS, DbId, MemoryItem, MemoryOut, MemoryPatch, SummaryRestore
from app.service.memory_admin import MemoryView, user_fact

router = APIRouter(prefix="/v1/sessions", tags=["memory"], responses=ERRORS)


def memory_out(view: MemoryView) -> MemoryOut:
    state = view.state
    return MemoryOut(
        strategy=view.session.strategy,
        summary=state.summary,
        summary_covers=state.summary_covers,
        pinned=view.pinned,
        items=[
            MemoryItem(id=m.id, role=m.role, content=m.content, created_at=m.created_at)
            for m in view.items
        ],
        indexing=view.indexing,
        forgotten=state.forgotten,
        summary_edited=state.summary_edited,
        summary_versions=state.summary_versions,
        pinned_removed=state.pinned_removed,
        notice=state.notice,
        index_unavailable=view.index_unavailable,
    )


@router.get(
    "/{session_id}/memory",
    response_model=MemoryOut,
    description="The running summary, pinned facts (the persona's, then the user's) and the "
    "stored turns the vector memory can recall (newest `limit`).",
)
async def get_memory(
    session_id: str,
    user: CurrentUser,
    admin: MemoryAdminDep,
    limit: int = Query(default=200, ge=1, le=5000),
) -> MemoryOut:
    return memory_out(await admin.view(user.id, session_id, limit))


@router.patch("/{session_id}/memory", response_model=MemoryOut)
async def patch_memory(
    session_id: str, body: MemoryPatch, user: CurrentUser, admin: MemoryAdminDep
) -> MemoryOut:
    """Replace the summary and/or the user's pinned facts (persona facts are not editable).
    What is replaced is kept: the summary in `summary_versions`, removed facts in
    `pinned_removed`."""
    pinned = None if body.pinned is None else [user_fact(p.text, p.id) for p in body.pinned]
    return memory_out(await admin.edit(user.id, session_id, body.summary, pinned))


@router.delete(
    "/{session_id}/memory/items/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Forget a stored turn: it leaves the vector index, is never recalled again (in "
    "any session), and a summary or gist that covered it is rebuilt without it (the previous "
    "summary is kept in `summary_versions`; a summary you edited stays as you wrote it, and "
    "`notice` says so). The message stays in the transcript. A recalled turn of another of "
    "your sessions (memory scopes) is forgotten in the session it belongs to.",
)
async def forget_item(
    session_id: str, message_id: DbId, user: CurrentUser, admin: MemoryAdminDep
) -> Response:
    await admin.forget_item(user.id, session_id, message_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{session_id}/memory/pinned/{fact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unpin(
    session_id: str, fact_id: str, user: CurrentUser, admin: MemoryAdminDep
) -> Response:
    await admin.unpin(user.id, session_id, fact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{session_id}/memory/summary/restore",
    response_model=MemoryOut,
    description="Make a kept summary version current again (`version` 0, the default, is the "
    "newest: undo). The summary it replaces is kept in its place, so this can be undone too.",
)
async def restore_summary(
    session_id: str, body: SummaryRestore, user: CurrentUser, admin: MemoryAdminDep
) -> MemoryOut:
    return memory_out(await admin.restore_summary(user.id, session_id, body.version))


@router.post(
    "/{session_id}/memory/pinned/{fact_id}/restore",
    response_model=MemoryOut,
    description="Pin again a fact of yours that was removed (listed in `pinned_removed`).",
)
async def restore_pinned(
    session_id: str, fact_id: str, user: CurrentUser, admin: MemoryAdminDep
) -> MemoryOut:
    return memory_out(await admin.restore_pinned(user.id, session_id, fact_id))


@router.delete(
    "/{session_id}/memory/notice",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Dismiss the memory notice (what automation last did to your summary).",
)
async def dismiss_notice(session_id: str, user: CurrentUser, admin: MemoryAdminDep) -> Response:
    await admin.dismiss_notice(user.id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{session_id}/memory",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Forget everything the session remembers beyond its transcript: the summary, "
    "the user's pinned facts and every vector-memory item.",
)
async def reset_memory(session_id: str, user: CurrentUser, admin: MemoryAdminDep) -> Response:
    await admin.reset(user.id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
