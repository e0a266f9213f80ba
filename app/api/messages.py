"""Messages: post one (the reply, whole or streamed as server-sent events) and page through them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.deps import ChatDep, CurrentUser, MemoryAdminDep
from app.errors import EngineUnavailableError, error_body, to_error
from app.schemas import (
    ERRORS,
    DbId,
    DraftIn,
    DraftOut,
    MessageCreate,
    MessageList,
    MessageOut,
    TurnOut,
    UsageOut,
)
from app.service.turns import Turn, TurnOptions, TurnResult
from app.store.records import MessageRecord

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/sessions", tags=["messages"], responses=ERRORS)

SSE_DOC = """With `stream: true` the response is `text/event-stream`:
`event: delta` with data `{"text": "..."}` for each piece of the reply, then `event: done` with
the same body as the non-streaming response, or `event: error` with `{"error": {...}}`."""


def message_out(m: MessageRecord) -> MessageOut:
    return MessageOut.model_validate(m, from_attributes=True)


def turn_out(r: TurnResult) -> TurnOut:
    return TurnOut(
        message=message_out(r.message),
        reply=message_out(r.reply),
        usage=UsageOut(
            prompt_tokens=r.usage.prompt_tokens,
            cached_tokens=r.usage.cached_tokens,
            completion_tokens=r.usage.completion_tokens,
        ),
        context_id=r.context_id,
    )


def sse(event: str, data: Any) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


def options_of(body: MessageCreate) -> TurnOptions:
    return TurnOptions(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens,
        seed=body.seed,
        stop=tuple(body.stop or ()),
        frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty,
        repetition_penalty=body.repetition_penalty,
    )


async def watch_disconnect(request: Request, turn: Turn, every: float = 0.25) -> TurnResult:
    """Await the turn; cancel it if the client leaves (it is then stored as interrupted)."""
    waiter = asyncio.ensure_future(turn.result())
    try:
        while True:
            done, _ = await asyncio.wait([waiter], timeout=every)
            if done:
                return waiter.result()
            if await request.is_disconnected():
                turn.cancel()
                return await waiter
    except asyncio.CancelledError:
        turn.cancel()
        raise


async def stream_events(turn: Turn) -> AsyncIterator[bytes]:
    """The SSE body. If the client goes away the server cancels this generator, which cancels
    the turn; the turn's own task then stores the partial reply as interrupted."""
    try:
        async for text in turn.deltas():
            yield sse("delta", {"text": text})
        result = await turn.result()
        if result.error is not None:
            yield sse("error", error_body("engine_error", result.error, status=503))
        else:
            yield sse("done", turn_out(result).model_dump(mode="json"))
    except asyncio.CancelledError:
        turn.cancel()
        raise
    except Exception as exc:  # noqa: BLE001 - the response has started: report in-band
        status, code, message, field = to_error(exc)
        log.warning("stream of session %s failed: %s", turn.session_id, message)
        yield sse("error", error_body(code, message, field, status))
    finally:
        if not turn.done:
            turn.cancel()


@router.post(
    "/{session_id}/messages",
    response_model=TurnOut,
    description="Send a message and get the reply. " + SSE_DOC,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def post_message(
    session_id: str,
    body: MessageCreate,
    request: Request,
    user: CurrentUser,
    chat: ChatDep,
) -> Any:
    turn = await chat.start_turn(user.id, session_id, body.content, options_of(body))
    if body.stream:
        return StreamingResponse(
            stream_events(turn),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await watch_disconnect(request, turn)
    if result.error is not None:
        raise EngineUnavailableError(f"generation failed: {result.error}")
    return turn_out(result)


@router.put(
    "/{session_id}/draft",
    status_code=202,
    response_model=DraftOut,
    description="What the user is typing, for the server to prefill the next prompt with it "
    "(recall included) while they type: the message then waits only for itself. Nothing is "
    "stored; a turn of the session ends it. Send it when typing pauses, not per keystroke.",
)
async def put_draft(session_id: str, body: DraftIn, user: CurrentUser, chat: ChatDep) -> DraftOut:
    outcome = await chat.draft(user.id, session_id, body.content, body.max_tokens)
    return DraftOut.model_validate(outcome, from_attributes=True)


@router.get("/{session_id}/messages", response_model=MessageList)
async def list_messages(
    session_id: str,
    user: CurrentUser,
    admin: MemoryAdminDep,
    limit: int = Query(default=50, ge=1, le=500),
    before: Annotated[DbId | None, Query(description="only messages with id < before")] = None,
) -> MessageList:
    records, has_more = await admin.messages_page(user.id, session_id, limit, before)
    return MessageList(messages=[message_out(m) for m in records], has_more=has_more)
