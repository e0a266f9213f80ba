"""Generation on a remote OpenAI-compatible server (mlx_lm.server, vLLM, llama.cpp, Ollama,
or another Memento), for deployments that serve the model elsewhere."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Protocol

import httpx

from app.llm.types import Chunk, EngineError, FinishReason, GenerationParams, Usage

log = logging.getLogger(__name__)
MAX_REMOTE_STOPS = 4


class TokenCounter(Protocol):
    def count(self, messages: Sequence[Mapping[str, str]]) -> int: ...
    def count_message(self, message: Mapping[str, str]) -> int: ...
    def count_overhead(self) -> int: ...


def _finish(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


def _error_text(error: Any) -> str:
    """The message of an in-band error event: `{"error": {"message": ...}}` (OpenAI, vLLM,
    Memento itself) or `{"error": "..."}` (llama.cpp, Ollama)."""
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or json.dumps(error))[:500]
    return str(error)[:500]


class OpenAIEngine:
    """The Engine protocol over HTTP. Token counts come from `counter`: exact when we hold the
    model's tokenizer, otherwise an approximate counter with a safety margin."""

    backend = "openai"

    def __init__(
        self,
        base_url: str,
        counter: TokenCounter,
        *,
        context_window: int,
        model_id: str | None = None,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id or "remote"
        self.context_window = context_window
        self._counter = counter
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )

    # -- counting (local, never over the network) -----------------------------------------
    def count(self, messages: Sequence[Mapping[str, str]]) -> int:
        return self._counter.count(messages)

    def count_message(self, message: Mapping[str, str]) -> int:
        return self._counter.count_message(message)

    def count_overhead(self) -> int:
        return self._counter.count_overhead()

    # -- generation ----------------------------------------------------------------------
    async def discover_model(self) -> str:
        """Ask the server which model it serves (first of /models) when none was configured."""
        try:
            resp = await self._client.get("/models")
            resp.raise_for_status()
            data = resp.json().get("data") or []
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(f"model server at {self.base_url} is not answering: {exc}") from exc
        if self.model_id == "remote" and data:
            self.model_id = str(data[0].get("id", "remote"))
        return self.model_id

    def _body(
        self, messages: Sequence[Mapping[str, str]], params: GenerationParams, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.repetition_penalty != 1.0:  # not OpenAI's; vLLM and llama.cpp servers read it
            body["repetition_penalty"] = params.repetition_penalty
        if params.logit_bias:  # the caller's own, in the remote model's token ids; the memory
            # bias needs this model's tokenizer, which a remote server does not lend
            body["logit_bias"] = {str(i): v for i, v in params.logit_bias}
        if params.stop:
            # OpenAI takes at most 4; the caller's own come first (ChatService adds role stops)
            body["stop"] = list(params.stop[:MAX_REMOTE_STOPS])
        return body

    async def warm(self, messages: Sequence[Mapping[str, str]], cache_key: str) -> int:
        return 0  # the server keeps its own prefix cache

    def check_capacity(self) -> None:
        """The model server queues (or refuses) for itself."""

    async def stream(
        self,
        messages: Sequence[Mapping[str, str]],
        params: GenerationParams,
        cache_key: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        body = self._body(messages, params, stream=True)
        if cache_key:
            body["user"] = cache_key  # lets a prefix-caching server keep one cache per session
        finish: FinishReason | None = None
        ended = False  # [DONE] seen: a reply without it (and without a finish reason) was cut
        usage: Usage | None = None
        produced = 0
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    detail = (await resp.aread()).decode(errors="replace")[:500]
                    raise EngineError(
                        f"model server at {self.base_url} answered {resp.status_code}: {detail}"
                    )
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        ended = True
                        break
                    event = json.loads(payload)
                    if not isinstance(event, dict):
                        raise EngineError(
                            f"model server at {self.base_url} sent an event that is not an "
                            f"object: {payload[:200]}"
                        )
                    if event.get("error"):
                        # a failure on the model server mid-reply, sent in-band because the
                        # 200 had already gone out: an error, never a normal end
                        raise EngineError(
                            f"model server at {self.base_url} failed mid-reply: "
                            f"{_error_text(event['error'])}"
                        )
                    if event.get("usage"):
                        usage = _usage(event["usage"])
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            produced += 1
                            yield Chunk(text=text)
                        if choice.get("finish_reason"):
                            finish = _finish(choice["finish_reason"])
        except httpx.HTTPError as exc:
            raise EngineError(f"model server at {self.base_url} failed: {exc!r}") from exc
        except json.JSONDecodeError as exc:
            raise EngineError(f"model server at {self.base_url} sent bad JSON: {exc}") from exc
        if not ended and finish is None:
            # the connection closed cleanly but the reply never finished (a killed worker
            # behind a proxy, a restart): what came is kept, as cut, not as a whole reply
            raise EngineError(
                f"model server at {self.base_url} closed the stream before the reply finished"
            )
        if usage is None:  # servers that ignore stream_options: count what we can
            usage = Usage(prompt_tokens=self.count(messages), completion_tokens=produced)
        yield Chunk(text="", finish_reason=finish or "stop", usage=usage)

    async def complete(
        self, messages: Sequence[Mapping[str, str]], params: GenerationParams
    ) -> str:
        parts = [c.text async for c in self.stream(messages, params)]
        return "".join(parts)

    async def aclose(self) -> None:
        await self._client.aclose()


def _usage(raw: Mapping[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
    )
