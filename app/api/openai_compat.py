"""OpenAI-compatible `GET /v1/models` and `POST /v1/chat/completions`.

Without `X-Memento-Session` a request is a stateless chat over exactly the given messages. With
it, the session's memory assembles the context: only the newest user message of the request is
new (the rest is what the client remembers; the session remembers better), and the turn is
stored like any other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.messages import watch_disconnect
from app.deps import ChatDep, CurrentUser, EngineDep, SettingsDep
from app.errors import EngineUnavailableError, InvalidFieldError, TooLargeError, to_error
from app.llm.types import Chunk, GenerationParams, Usage
from app.schemas import ERRORS, Seed
from app.turns import TurnOptions, TurnResult, recent_replies

router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)


# -- request and response models -------------------------------------------------------------
class OAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI options are accepted and ignored

    model: str | None = None
    messages: list[OAIMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: Seed | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="only 1 is supported")
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(
        default=None, gt=0, le=2, description="not OpenAI's: > 1 discourages tokens already said"
    )


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "memento"
    context_window: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- helpers ----------------------------------------------------------------------------------
def text_of(m: OAIMessage, i: int) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    texts = []
    for j, part in enumerate(m.content):
        if part.get("type") != "text":
            raise InvalidFieldError(
                f"content part type {part.get('type')!r} is not supported (text only)",
                field=f"messages.{i}.content.{j}.type",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def chat_messages(req: ChatCompletionRequest) -> list[dict[str, str]]:
    out = []
    for i, m in enumerate(req.messages):
        if m.role in ("tool", "function"):
            raise InvalidFieldError(
                f"role {m.role!r} is not supported (no tool calling)", field=f"messages.{i}.role"
            )
        role = "system" if m.role == "developer" else m.role
        out.append({"role": role, "content": text_of(m, i)})
    return out


def options_of(req: ChatCompletionRequest) -> TurnOptions:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    return TurnOptions(
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        seed=req.seed,
        stop=tuple(s for s in stop if s),
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
        repetition_penalty=req.repetition_penalty,
    )


def usage_of(u: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.prompt_tokens + u.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=u.cached_tokens),
    )


def finish_of(reason: str | None) -> Literal["stop", "length"]:
    return "length" if reason == "length" else "stop"


def chunk_json(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    usage: CompletionUsage | None = None,
    choices: bool = True,
) -> bytes:
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        if choices
        else [],
    }
    if usage is not None:
        body["usage"] = usage.model_dump()
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


class _Out:
    """The shared shape of a finished completion, session-backed or stateless."""

    def __init__(self, text: str, usage: Usage, finish: str | None) -> None:
        self.text, self.usage, self.finish = text, usage, finish


# -- routes -----------------------------------------------------------------------------------
@router.get("/models", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    return ModelList(
        data=[
            ModelCard(
                id=engine.model_id, created=int(time.time()), context_window=engine.context_window
            )
        ]
    )


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
    engine: EngineDep,
    settings: SettingsDep,
    x_memento_session: str | None = Header(default=None),
) -> Any:
    messages = chat_messages(body)
    options = options_of(body)
    chat.check_max_tokens(options.max_tokens)
    cid = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    model = engine.model_id
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

            async def deltas() -> AsyncIterator[str]:
                async for text in turn.deltas():
                    yield text

            async def final() -> _Out:
                r: TurnResult = await turn.result()
                if r.error is not None:
                    raise EngineUnavailableError(f"generation failed: {r.error}")
                return _Out(r.reply.content, r.usage, r.finish_reason)

            return StreamingResponse(
                _stream(cid, created, model, deltas(), final, include_usage, turn.cancel),
                media_type="text/event-stream",
                headers=headers,
            )
        result = await watch_disconnect(request, turn)
        if result.error is not None:
            raise EngineUnavailableError(f"generation failed: {result.error}")
        response.headers.update(headers)
        return _completion(
            cid, created, model, _Out(result.reply.content, result.usage, result.finish_reason)
        )

    # stateless: exactly the given messages
    params = options.params({}, min(settings.default_max_tokens, settings.max_tokens_limit))
    # the client's own earlier replies count as said, as a session's do
    said = recent_replies([(m["role"], m["content"]) for m in messages[:-1]])
    params = dataclasses.replace(params, penalty_context=said)
    for i, m in enumerate(messages):
        if m["content"]:
            chat.check_content(m["content"], field=f"messages.{i}.content")
    needed = await asyncio.to_thread(engine.count, messages)
    if needed + params.max_tokens > engine.context_window:
        raise TooLargeError(
            f"the messages take {needed} tokens; with max_tokens {params.max_tokens} that is "
            f"over the {engine.context_window}-token context window",
            field="messages",
        )
    # one cache slot per user: a client that resends a growing conversation reuses its prefix
    cache_key = f"stateless:{user.id}"
    if body.stream:
        source, collected = _engine_stream(engine, messages, params, cache_key)
        return StreamingResponse(
            _stream(cid, created, model, source, collected, include_usage, None),
            media_type="text/event-stream",
        )
    parts: list[str] = []
    usage, finish = Usage(), None
    async for chunk in engine.stream(messages, params, cache_key=cache_key):
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            usage, finish = chunk.usage or usage, chunk.finish_reason
    return _completion(cid, created, model, _Out("".join(parts), usage, finish))


def _completion(cid: str, created: int, model: str, out: _Out) -> ChatCompletion:
    return ChatCompletion(
        id=cid,
        created=created,
        model=model,
        choices=[
            Choice(message=AssistantMessage(content=out.text), finish_reason=finish_of(out.finish))
        ],
        usage=usage_of(out.usage),
    )


def _engine_stream(
    engine: Any, messages: list[dict[str, str]], params: GenerationParams, cache_key: str
) -> tuple[AsyncIterator[str], Any]:
    state: dict[str, Any] = {"parts": [], "usage": Usage(), "finish": None}

    async def source() -> AsyncIterator[str]:
        chunk: Chunk
        async for chunk in engine.stream(messages, params, cache_key=cache_key):
            if chunk.text:
                state["parts"].append(chunk.text)
                yield chunk.text
            if chunk.finish_reason is not None:
                state["usage"], state["finish"] = chunk.usage or Usage(), chunk.finish_reason

    async def collected() -> _Out:
        return _Out("".join(state["parts"]), state["usage"], state["finish"])

    return source(), collected


async def _stream(
    cid: str,
    created: int,
    model: str,
    deltas: AsyncIterator[str],
    final: Any,
    include_usage: bool,
    on_cancel: Any,
) -> AsyncIterator[bytes]:
    try:
        yield chunk_json(cid, created, model, {"role": "assistant", "content": ""})
        async for text in deltas:
            yield chunk_json(cid, created, model, {"content": text})
        out: _Out = await final()
        yield chunk_json(cid, created, model, {}, finish=finish_of(out.finish))
        if include_usage:
            yield chunk_json(cid, created, model, {}, usage=usage_of(out.usage), choices=False)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        raise
    except Exception as exc:  # noqa: BLE001 - the response has started: report in-band
        _, code, message, field = to_error(exc)
        err = {"error": {"code": code, "message": message, "field": field}}
        yield f"data: {json.dumps(err)}\n\n".encode()
    yield DONE
