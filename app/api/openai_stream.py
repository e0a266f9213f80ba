"""A completion in OpenAI's shapes: the JSON body, or the server-sent events of a stream (chunks,
the finish, usage when asked, an in-band error once the response has started, `[DONE]`), for a
session turn and a stateless completion alike."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from app.api.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    ChoiceLogprobs,
    CompletionUsage,
    PromptTokensDetails,
    TokenLogprobOut,
    TopLogprob,
)
from app.errors import EngineUnavailableError, error_body, openai_status, to_error
from app.llm.types import TokenLogprob, Usage
from app.service.completion import Completions, Finished
from app.service.generation import Piece
from app.service.turns import Turn, TurnResult


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


class Outcome:
    """The shared shape of a finished completion, session-backed or stateless."""

    def __init__(
        self,
        text: str,
        usage: Usage,
        finish: str | None,
        logprobs: list[TokenLogprobOut] | None = None,
    ) -> None:
        self.text, self.usage, self.finish, self.logprobs = text, usage, finish, logprobs


def outcome_of_turn(result: TurnResult) -> Outcome:
    """A session turn's result as a completion; 503 when its generation failed."""
    if result.error is not None:
        raise EngineUnavailableError(f"generation failed: {result.error}")
    return Outcome(result.reply.content, result.usage, result.finish_reason)


def turn_pieces(turn: Turn) -> tuple[AsyncIterator[Delta], Callable[[], Awaitable[Outcome]]]:
    """A session turn's deltas (no logprobs: refused with a session) and its outcome."""

    async def deltas() -> AsyncIterator[Delta]:
        async for text in turn.deltas():
            yield text, None

    async def final() -> Outcome:
        return outcome_of_turn(await turn.result())

    return deltas(), final


def openai_pieces(
    pieces: AsyncIterator[Piece], result: Callable[[], Awaitable[Finished]], model: Completions
) -> tuple[AsyncIterator[Delta], Callable[[], Awaitable[Outcome]]]:
    """A stateless completion's pieces and result with OpenAI's logprobs (token texts and
    bytes), each token converted once."""
    converted: list[TokenLogprobOut] = []

    async def source() -> AsyncIterator[Delta]:
        async for text, lp in pieces:
            out = logprobs_of(lp, model) if lp else None
            converted.extend(out or ())
            yield text, out

    async def collected() -> Outcome:
        done = await result()
        lp = None if done.logprobs is None else converted
        return Outcome(done.text, done.usage, done.finish, lp)

    return source(), collected


def completion_body(cid: str, created: int, model: str, out: Outcome) -> ChatCompletion:
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


async def sse_stream(
    cid: str,
    created: int,
    model: str,
    deltas: AsyncIterator[Delta],
    final: Callable[[], Awaitable[Outcome]],
    include_usage: bool,
    on_cancel: Callable[[], None] | None,
) -> AsyncIterator[bytes]:
    try:
        yield chunk_json(cid, created, model, {"role": "assistant", "content": ""})
        async for text, logprobs in deltas:
            yield chunk_json(cid, created, model, {"content": text}, logprobs=logprobs)
        out = await final()
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
