"""Sessions: create, list, read, rename or change memory strategy, delete, export, import."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from app.deps import ChatDep, CurrentUser, PersonasDep, SettingsDep, StoreDep
from app.errors import InvalidFieldError, NotFoundError
from app.schemas import ERRORS, DbOffset, SessionCreate, SessionList, SessionOut, SessionPatch
from app.session_memory import session_info, validate_memory
from app.store.records import SessionRecord
from app.store.transfer import SessionExport, parse_export
from memory.lore.errors import LoreError
from memory.lore.model import LoreBook

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=ERRORS)


def session_out(s: SessionRecord, greeting: str | None = None) -> SessionOut:
    return SessionOut.model_validate(
        {
            "id": s.id,
            "persona": s.persona_id,
            "title": s.title,
            "memory": {"strategy": s.strategy, **s.params},
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "greeting": greeting,
        }
    )


async def with_greeting(record: SessionRecord, chat: ChatDep, personas: PersonasDep) -> SessionOut:
    """One session with the greeting her relationship with the user calls for (none when her
    persona was deleted: the session stays readable, a turn in it says what to do)."""
    try:
        persona = personas.get(record.persona_id)
    except NotFoundError:
        return session_out(record)
    return session_out(record, await chat.memory.relationships.greeting(record, persona))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
async def create_session(
    body: SessionCreate,
    user: CurrentUser,
    store: StoreDep,
    personas: PersonasDep,
    settings: SettingsDep,
    chat: ChatDep,
) -> SessionOut:
    persona = personas.get(body.persona)
    strategy = body.memory.strategy or persona.memory.strategy
    params = body.memory.params()
    if strategy == persona.memory.strategy:
        # the persona's tuned params are the defaults; what the client sets wins
        params = {**persona.memory.params, **params}
    params = validate_memory(strategy, params)
    record = await asyncio.to_thread(
        store.create_session,
        user.id,
        persona.id,
        strategy,
        params,
        body.title,
        max_sessions=settings.max_sessions_per_user,
    )
    # a new conversation begins: for the user the others have ended, so their gists are
    # brought up to date before her greeting and first reply read them
    await chat.memory.relationships.refresh_gists(user.id, persona.id, exclude=record.id)
    return await with_greeting(record, chat, personas)


@router.get("", response_model=SessionList)
async def list_sessions(
    user: CurrentUser,
    store: StoreDep,
    limit: int = Query(default=50, ge=1, le=500),
    offset: Annotated[DbOffset, Query()] = 0,
) -> SessionList:
    records = await asyncio.to_thread(store.list_sessions, user.id, limit, offset)
    return SessionList(sessions=[session_out(r) for r in records])


@router.get("/{session_id}", response_model=SessionOut)
async def get_session(
    session_id: str, user: CurrentUser, store: StoreDep, chat: ChatDep, personas: PersonasDep
) -> SessionOut:
    record = await asyncio.to_thread(store.get_session, user.id, session_id)
    return await with_greeting(record, chat, personas)


@router.patch("/{session_id}", response_model=SessionOut)
async def patch_session(
    session_id: str, body: SessionPatch, user: CurrentUser, store: StoreDep, chat: ChatDep
) -> SessionOut:
    current = await asyncio.to_thread(store.get_session, user.id, session_id)
    strategy = params = None
    if body.memory is not None:
        strategy = body.memory.strategy or current.strategy
        given = body.memory.params()
        # same strategy: a partial update of its params; another one: its own params only
        params = {**current.params, **given} if strategy == current.strategy else given
        params = validate_memory(strategy, params)
    clear_title = "title" in body.model_fields_set and body.title is None
    record = await asyncio.to_thread(
        store.update_session,
        user.id,
        session_id,
        title=body.title,
        strategy=strategy,
        params=params,
        clear_title=clear_title,
    )
    if strategy is not None and strategy != current.strategy:
        new = chat.memory.strategy(record)
        if getattr(new, "uses_recall", False):
            # a session that turns to recall needs its past in the index
            chat.memory.background(chat.memory.index_history(record), name=f"index-{record.id}")
    return session_out(record)


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    session_id: str, user: CurrentUser, store: StoreDep, chat: ChatDep
) -> Response:
    record = await asyncio.to_thread(store.get_session, user.id, session_id)
    await asyncio.to_thread(store.delete_session, user.id, session_id)
    if chat.memory.recaller is not None:
        await chat.memory.recaller.forget(session_info(record))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{session_id}/export", response_model=SessionExport)
async def export_session(session_id: str, user: CurrentUser, store: StoreDep) -> Any:
    return await asyncio.to_thread(store.export_session, user.id, session_id)


@router.post("/import", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
async def import_session(
    user: CurrentUser,
    store: StoreDep,
    chat: ChatDep,
    personas: PersonasDep,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Body(description="a session export (GET .../export)")],
) -> SessionOut:
    parsed = parse_export(body)
    if parsed.session.persona not in personas:
        raise InvalidFieldError(
            f"persona {parsed.session.persona!r} is not known here; add it first "
            "(POST /v1/personas)",
            field="session.persona",
        )
    validate_memory(parsed.session.strategy, parsed.session.params)
    for i, book in enumerate(parsed.lorebooks):
        try:
            LoreBook.of(book.data)
        except LoreError as exc:
            where = f"lorebooks.{i}.data" + (f".{exc.field}" if exc.field else "")
            problem = str(exc).removeprefix(f"{exc.field}: ")
            raise InvalidFieldError(f"{where}: {problem}", field=where) from None
    for i, m in enumerate(parsed.messages):
        if m.content:  # an interrupted reply may be empty
            chat.check_content(m.content, field=f"messages.{i}.content")

    def recount() -> dict[str, Any]:
        # token counts belong to this server's model, not to the exporter's
        for m in parsed.messages:
            m.tokens = chat.count_message(m.role, m.content)
        return parsed.model_dump(mode="json")

    data = await asyncio.to_thread(recount)
    record = await asyncio.to_thread(
        store.import_session,
        user.id,
        data,
        max_messages=settings.max_history_import,
        max_sessions=settings.max_sessions_per_user,
    )
    # whatever its strategy: the user's later sessions recall from it (memory scopes)
    chat.memory.background(chat.memory.index_history(record), name=f"index-{record.id}")
    return session_out(record)
