"""A session's memory: read it, edit the summary and pinned facts, forget items."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import APIRouter, Query, Response, status

from app.deps import ChatDep, CurrentUser, PersonasDep, StoreDep
from app.errors import NotFoundError
from app.recall_guard import describe
from app.schemas import ERRORS, DbId, MemoryItem, MemoryOut, MemoryPatch, SummaryRestore
from app.session_memory import session_info
from memory import user_edits
from memory.recall import recallable
from memory.types import MemoryState, PinnedFact

router = APIRouter(prefix="/v1/sessions", tags=["memory"], responses=ERRORS)


async def _memory_out(
    user_id: str,
    session_id: str,
    store: StoreDep,
    chat: ChatDep,
    personas: PersonasDep,
    limit: int = 200,
) -> MemoryOut:
    session = await asyncio.to_thread(store.get_session, user_id, session_id)
    state, _ = await asyncio.to_thread(store.get_memory, user_id, session_id)
    persona = personas.catalog.session_persona(session)
    items: list[MemoryItem] = []
    indexing = 0
    recaller = chat.memory.recaller
    index = getattr(recaller, "index", None)
    unavailable: str | None = None
    if index is not None:
        try:
            indexed = await index.ids(session_info(session))
        except Exception as exc:  # noqa: BLE001 - the vector server is down: say so, show the rest
            unavailable = f"the vector index is unavailable ({describe(exc)})"
            indexed = set()
        # an import or a strategy change indexes in the background: the page waits for a
        # recalling session's turns, unless nothing is being indexed (the index is down)
        waits = chat.memory.strategy(session).uses_recall and not unavailable
        if indexed or waits:
            history = await asyncio.to_thread(store.history, user_id, session_id)
            forgotten = set(state.forgotten)
            kept = [m for m in history if m.id not in forgotten and recallable(m)]
            items = [
                MemoryItem(id=m.id, role=m.role, content=m.content, created_at=m.created_at)
                for m in kept
                if m.id in indexed
            ][-limit:]
            indexing = sum(m.id not in indexed for m in kept) if waits else 0
    return MemoryOut(
        strategy=session.strategy,
        summary=state.summary,
        summary_covers=state.summary_covers,
        pinned=persona.pinned() + state.pinned,
        items=items,
        indexing=indexing,
        forgotten=state.forgotten,
        summary_edited=state.summary_edited,
        summary_versions=state.summary_versions,
        pinned_removed=state.pinned_removed,
        notice=state.notice,
        index_unavailable=unavailable,
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
    store: StoreDep,
    chat: ChatDep,
    personas: PersonasDep,
    limit: int = Query(default=200, ge=1, le=5000),
) -> MemoryOut:
    return await _memory_out(user.id, session_id, store, chat, personas, limit)


def _fact_id(text: str) -> str:
    return "user:" + hashlib.sha1(text.encode()).hexdigest()[:10]


@router.patch("/{session_id}/memory", response_model=MemoryOut)
async def patch_memory(
    session_id: str,
    body: MemoryPatch,
    user: CurrentUser,
    store: StoreDep,
    chat: ChatDep,
    personas: PersonasDep,
) -> MemoryOut:
    """Replace the summary and/or the user's pinned facts (persona facts are not editable).
    What is replaced is kept: the summary in `summary_versions`, removed facts in
    `pinned_removed`."""

    def change(state: MemoryState) -> MemoryState:
        if body.summary is not None:
            # an edited summary is the user's word: keep what it covers, reset failures
            state = user_edits.edit_summary(state, body.summary)
        if body.pinned is not None:
            state = user_edits.replace_pinned(
                state,
                [
                    PinnedFact(id=p.id or _fact_id(p.text), text=p.text.strip(), source="user")
                    for p in body.pinned
                ],
            )
        return state

    await asyncio.to_thread(store.update_memory, user.id, session_id, change)
    return await _memory_out(user.id, session_id, store, chat, personas)


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
    session_id: str, message_id: DbId, user: CurrentUser, store: StoreDep, chat: ChatDep
) -> Response:
    await asyncio.to_thread(store.get_session, user.id, session_id)  # 404 if not the user's
    owner = await asyncio.to_thread(store.message_session, user.id, message_id)

    def change(state: MemoryState) -> MemoryState:
        if message_id not in state.forgotten:
            state = state.model_copy(update={"forgotten": [*state.forgotten, message_id]})
        return user_edits.after_forget(state, [message_id])

    await asyncio.to_thread(store.update_memory, user.id, owner.id, change)
    await chat.memory.forgot(owner)
    # a summary dropped for covering it is rebuilt now, in the background, not at the next turn
    chat.memory.upkeep_later(owner)
    if chat.memory.recaller is not None:
        await chat.memory.recaller.forget(session_info(owner), [message_id])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{session_id}/memory/pinned/{fact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unpin(session_id: str, fact_id: str, user: CurrentUser, store: StoreDep) -> Response:
    state, _ = await asyncio.to_thread(store.get_memory, user.id, session_id)
    if not any(p.id == fact_id for p in state.pinned):
        raise NotFoundError(
            f"no user-pinned fact {fact_id!r} in session {session_id} (persona facts are "
            "fixed by the persona file)",
            field="fact_id",
        )

    def change(state: MemoryState) -> MemoryState:
        return user_edits.replace_pinned(state, [p for p in state.pinned if p.id != fact_id])

    await asyncio.to_thread(store.update_memory, user.id, session_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{session_id}/memory/summary/restore",
    response_model=MemoryOut,
    description="Make a kept summary version current again (`version` 0, the default, is the "
    "newest: undo). The summary it replaces is kept in its place, so this can be undone too.",
)
async def restore_summary(
    session_id: str,
    body: SummaryRestore,
    user: CurrentUser,
    store: StoreDep,
    chat: ChatDep,
    personas: PersonasDep,
) -> MemoryOut:
    def change(state: MemoryState) -> MemoryState:
        return user_edits.restore_summary(state, body.version)

    await asyncio.to_thread(store.update_memory, user.id, session_id, change)
    return await _memory_out(user.id, session_id, store, chat, personas)


@router.post(
    "/{session_id}/memory/pinned/{fact_id}/restore",
    response_model=MemoryOut,
    description="Pin again a fact of yours that was removed (listed in `pinned_removed`).",
)
async def restore_pinned(
    session_id: str,
    fact_id: str,
    user: CurrentUser,
    store: StoreDep,
    chat: ChatDep,
    personas: PersonasDep,
) -> MemoryOut:
    def change(state: MemoryState) -> MemoryState:
        return user_edits.restore_pinned(state, fact_id)

    await asyncio.to_thread(store.update_memory, user.id, session_id, change)
    return await _memory_out(user.id, session_id, store, chat, personas)


@router.delete(
    "/{session_id}/memory/notice",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Dismiss the memory notice (what automation last did to your summary).",
)
async def dismiss_notice(session_id: str, user: CurrentUser, store: StoreDep) -> Response:
    def change(state: MemoryState) -> MemoryState:
        return state.model_copy(update={"notice": None})

    await asyncio.to_thread(store.update_memory, user.id, session_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{session_id}/memory",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Forget everything the session remembers beyond its transcript: the summary, "
    "the user's pinned facts and every vector-memory item.",
)
async def reset_memory(
    session_id: str, user: CurrentUser, store: StoreDep, chat: ChatDep
) -> Response:
    session = await asyncio.to_thread(store.get_session, user.id, session_id)
    history = await asyncio.to_thread(store.history, user.id, session_id)

    def change(state: MemoryState) -> MemoryState:
        return MemoryState(forgotten=sorted({*state.forgotten, *(m.id for m in history)}))

    await asyncio.to_thread(store.update_memory, user.id, session_id, change)
    await chat.memory.forgot(session)
    if chat.memory.recaller is not None:
        await chat.memory.recaller.forget(session_info(session))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
