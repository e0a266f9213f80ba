"""OpenAI-compatible `GET /v1/models` and `POST /v1/chat/completions`.

Without `X-Memento-Session` a request is a stateless chat over exactly the given messages. With
it, the session's memory assembles the context: only the newest user message of the request is
new (the rest is what the client remembers; the session remembers better), and the turn is
stored like any other.

The routes only: the bodies are in `openai_schemas.py`, the request's checks and reading in
`openai_checks.py`, the reply's JSON and server-sent events in `openai_stream.py`; the work is
`ChatService` (a turn) and `app/service/completion.py` `Completions` (a stateless completion).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from app.api.messages import watch_disconnect
from app.api.openai_checks import (
    MODEL_ALIAS,
    chat_messages,
    check_supported,
    options_of,
    served_model,
)
from app.api.openai_schemas import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from app.api.openai_stream import (
    completion_body,
    openai_pieces,
    outcome_of_turn,
    sse_stream,
    turn_pieces,
)
from app.deps import ChatDep, CompletionsDep, CurrentUser, ServedModelDep
from app.errors import InvalidFieldError
from app.llm.constrained import schema_of
from app.schemas import OPENAI_ERRORS
from app.service.completion import ServedModel

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_ERRORS)


def _card(model: ServedModel, model_id: str) -> ModelCard:
    return ModelCard(id=model_id, created=int(time.time()), context_window=model.context_window)


@router.get("/models", response_model=ModelList)
async def list_models(model: ServedModelDep) -> ModelList:
    return ModelList(data=[_card(model, model.model_id), _card(model, MODEL_ALIAS)])


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, model: ServedModelDep) -> ModelCard:
    served_model(model_id, model)  # 404 model_not_found for any other id
    return _card(model, model_id)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    response: Response,
    user: CurrentUser,
    chat: ChatDep,
    completions: CompletionsDep,
    x_memento_session: str | None = Header(default=None),
) -> Any:
    model = served_model(body.model, completions)
    await check_supported(body, completions, bool(x_memento_session))
    messages = chat_messages(body)
    options = options_of(body)
    completions.check_max_tokens(options.max_tokens)
    cid = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    if x_memento_session:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if messages[-1]["role"] != "user" or not users:
            raise InvalidFieldError(
                "with X-Memento-Session the last message must be the user's new message",
                field=f"messages.{len(messages) - 1}.role",
            )
        turn = await chat.start_turn(user.id, x_memento_session, users[-1], options)
        headers = {
            "X-Memento-Session": x_memento_session,
            "X-Memento-Message-Id": str(turn.message.id),
            "X-Memento-Reply-Id": str(turn.reply.id),
            "X-Memento-Context-Id": str(turn.context.id),
        }
        if body.stream:
            deltas, final = turn_pieces(turn)
            return StreamingResponse(
                sse_stream(cid, created, model, deltas, final, include_usage, turn.cancel),
                media_type="text/event-stream",
                headers=headers,
            )
        outcome = outcome_of_turn(await watch_disconnect(request, turn))
        response.headers.update(headers)
        return completion_body(cid, created, model, outcome)

    # stateless: exactly the given messages
    reply = await completions.start(
        user.id,
        messages,
        options,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        json_schema=schema_of(body.response_format) if body.response_format else None,
    )
    source, collected = openai_pieces(reply.pieces(), reply.result, completions)
    if body.stream:
        return StreamingResponse(
            sse_stream(cid, created, model, source, collected, include_usage, None),
            media_type="text/event-stream",
        )
    async for _ in source:
        pass
    return completion_body(cid, created, model, await collected())
