"""OpenAI-compatible `GET /v1/models` and `POST /v1/chat/completions`.

Without `X-Memento-Session` a request is a stateless chat over exactly the given messages. With
it, the session's memory assembles the context: only the newest user message of the request is
new (the rest is what the client remembers; the session remembers better), and the turn is
stored like any other.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.messages import watch_disconnect
from app.deps import ChatDep, CompletionsDep, CurrentUser, EngineDep
from app.errors import (
    EngineUnavailableError,
    InvalidFieldError,
    NotFoundError,
    error_body,
    openai_status,
    to_error,
)
from app.llm.constrained import SchemaError, schema_of
from app.llm.types import MAX_TOP_LOGPROBS, Engine, TokenLogprob, Usage
from app.schemas import OPENAI_ERRORS, Seed
from app.service.completion import Completions, Finished, Piece
from app.turns import TurnOptions, TurnResult

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_ERRORS)


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
    # Options that do not change the reply (user, metadata, store, service_tier...) and other
    # servers' extensions are accepted and ignored; every option that would change it is either
    # honoured or refused by `check_supported`, never silently dropped (issue 17).
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, description="`memento` or the id /v1/models lists")
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
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    logit_bias: dict[str, float] | None = None
    audio: Any = None
    modalities: list[str] | None = None


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


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut]
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChoiceLogprobs | None = None


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


# -- checks -----------------------------------------------------------------------------------
MODEL_ALIAS = "memento"  # always names the served model, whatever it is (listed beside its id)
MAX_STOP = 4  # OpenAI's limit on stop sequences


def served_model(requested: str | None, engine: Engine | Completions) -> str:
    """The id of the model that answers `requested`: ours under its own id or the alias, else
    404 `model_not_found` as OpenAI answers (serving another model silently misleads a client
    that asked for a specific one). No `model` at all is accepted: our own clients omit it."""
    if requested is None or requested in (MODEL_ALIAS, engine.model_id):
        return str(engine.model_id)
    raise NotFoundError(
        f"The model `{requested}` does not exist or you do not have access to it. This "
        f"server serves `{engine.model_id}` (also as `{MODEL_ALIAS}`), see GET /v1/models",
        field="model",
        code="model_not_found",
    )


def _unsupported(param: str, why: str) -> InvalidFieldError:
    return InvalidFieldError(f"{param!r} is not supported: {why}", param, "unsupported_parameter")


async def check_response_format(fmt: dict[str, Any], model: Completions, session: bool) -> None:
    """`text`, or JSON by constrained decoding: the schema must compile before anything runs."""
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind not in ("json_object", "json_schema"):
        raise InvalidFieldError(
            f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}",
            "response_format.type",
        )
    if session:
        raise _unsupported("response_format", "not with X-Memento-Session (stateless calls only)")
    if not model.supports_json_schema:
        raise _unsupported("response_format", f"the {model.backend} backend cannot constrain")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise InvalidFieldError(
                "response_format.json_schema must be an object with a `schema` object",
                "response_format.json_schema",
            )
    schema = schema_of(fmt)
    assert schema is not None
    try:
        await model.check_json_schema(schema)
    except SchemaError as exc:
        raise InvalidFieldError(
            f"response_format.json_schema.schema cannot be used: {exc}",
            "response_format.json_schema.schema",
        ) from exc


async def check_supported(req: ChatCompletionRequest, model: Completions, session: bool) -> None:
    """Refuse, naming the param, every option we would otherwise silently ignore, and the
    combinations OpenAI itself refuses. Runs before anything is generated or stored."""
    no_tools = "the model does not call tools"
    for name in ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"):
        if getattr(req, name) is not None:
            raise _unsupported(name, no_tools)
    if req.response_format is not None:
        await check_response_format(req.response_format, model, session)
    if req.logit_bias:
        raise _unsupported("logit_bias", "token biases are not applied")
    if req.audio is not None or any(m != "text" for m in req.modalities or ()):
        raise _unsupported("audio" if req.audio is not None else "modalities", "text only")
    if req.stream_options is not None and not req.stream:
        raise InvalidFieldError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if isinstance(req.stop, list) and len(req.stop) > MAX_STOP:
        raise InvalidFieldError(
            f"at most {MAX_STOP} stop sequences are allowed, got {len(req.stop)}", "stop"
        )
    if req.max_tokens is not None and req.max_completion_tokens is not None:
        raise InvalidFieldError(
            "max_tokens and max_completion_tokens cannot both be set (max_tokens is the "
            "deprecated name of max_completion_tokens)",
            "max_tokens",
        )
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidFieldError("top_logprobs requires logprobs to be true", "top_logprobs")
    if req.logprobs:
        if session:
            raise _unsupported("logprobs", "not with X-Memento-Session (stateless calls only)")
        if not model.supports_logprobs:
            raise _unsupported("logprobs", f"the {model.backend} backend does not report them")


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


def logprobs_of(items: list[TokenLogprob], model: Completions) -> list[TokenLogprobOut]:
    """OpenAI's shape: each token's text, its UTF-8 bytes (a token may be part of a
    character), its log-probability and the top alternatives."""

    def entry(token_id: int, logprob: float) -> TopLogprob:
        raw = model.token_bytes(token_id)
        return TopLogprob(
            token=raw.decode("utf-8", errors="replace"), logprob=logprob, bytes=list(raw)
        )

    out = []
    for item in items:
        own = entry(item.token_id, item.logprob)
        top = [entry(i, p) for i, p in item.top]
        out.append(TokenLogprobOut(**own.model_dump(), top_logprobs=top))
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
    logprobs: list[TokenLogprobOut] | None = None,
) -> bytes:
    lp = None if logprobs is None else {"content": [t.model_dump() for t in logprobs]}
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": lp}]
        if choices
        else [],
    }
    if usage is not None:
        body["usage"] = usage.model_dump()
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


DONE = b"data: [DONE]\n\n"

# A streamed piece: its text and, when asked for, its tokens' log-probabilities.
Delta = tuple[str, list[TokenLogprobOut] | None]


class _Out:
    """The shared shape of a finished completion, session-backed or stateless."""

    def __init__(
        self,
        text: str,
        usage: Usage,
        finish: str | None,
        logprobs: list[TokenLogprobOut] | None = None,
    ) -> None:
        self.text, self.usage, self.finish, self.logprobs = text, usage, finish, logprobs


# -- routes -----------------------------------------------------------------------------------
def _card(engine: Engine, model_id: str) -> ModelCard:
    return ModelCard(id=model_id, created=int(time.time()), context_window=engine.context_window)


@router.get("/models", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    return ModelList(data=[_card(engine, engine.model_id), _card(engine, MODEL_ALIAS)])


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, engine: EngineDep) -> ModelCard:
    served_model(model_id, engine)  # 404 model_not_found for any other id
    return _card(engine, model_id)


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

            async def deltas() -> AsyncIterator[Delta]:
                async for text in turn.deltas():
                    yield text, None

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
    reply = await completions.start(
        user.id,
        messages,
        options,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        json_schema=schema_of(body.response_format) if body.response_format else None,
    )
    source, collected = _openai_pieces(reply.pieces(), reply.result, completions)
    if body.stream:
        return StreamingResponse(
            _stream(cid, created, model, source, collected, include_usage, None),
            media_type="text/event-stream",
        )
    async for _ in source:
        pass
    return _completion(cid, created, model, await collected())


def _completion(cid: str, created: int, model: str, out: _Out) -> ChatCompletion:
    logprobs = None if out.logprobs is None else ChoiceLogprobs(content=out.logprobs)
    return ChatCompletion(
        id=cid,
        created=created,
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(content=out.text),
                finish_reason=finish_of(out.finish),
                logprobs=logprobs,
            )
        ],
        usage=usage_of(out.usage),
    )


def _openai_pieces(
    pieces: AsyncIterator[Piece], result: Callable[[], Awaitable[Finished]], model: Completions
) -> tuple[AsyncIterator[Delta], Callable[[], Awaitable[_Out]]]:
    """A stateless completion's pieces and result with OpenAI's logprobs (token texts and
    bytes), each token converted once."""
    converted: list[TokenLogprobOut] = []

    async def source() -> AsyncIterator[Delta]:
        async for text, lp in pieces:
            out = logprobs_of(lp, model) if lp else None
            converted.extend(out or ())
            yield text, out

    async def collected() -> _Out:
        done = await result()
        lp = None if done.logprobs is None else converted
        return _Out(done.text, done.usage, done.finish, lp)

    return source(), collected


async def _stream(
    cid: str,
    created: int,
    model: str,
    deltas: AsyncIterator[Delta],
    final: Any,
    include_usage: bool,
    on_cancel: Any,
) -> AsyncIterator[bytes]:
    try:
        yield chunk_json(cid, created, model, {"role": "assistant", "content": ""})
        async for text, logprobs in deltas:
            yield chunk_json(cid, created, model, {"content": text}, logprobs=logprobs)
        out: _Out = await final()
        yield chunk_json(cid, created, model, {}, finish=finish_of(out.finish))
        if include_usage:
            yield chunk_json(cid, created, model, {}, usage=usage_of(out.usage), choices=False)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        raise
    except Exception as exc:  # noqa: BLE001 - the response has started: report in-band
        status, code, message, field = to_error(exc)
        body = error_body(code, message, field, openai_status(status, field))
        yield f"data: {json.dumps(body)}\n\n".encode()
    yield DONE
