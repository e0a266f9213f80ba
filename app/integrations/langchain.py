"""Memento's engine as a LangChain chat model, for users' own chains.

    from app.integrations.langchain import MementoChat
    llm = MementoChat(engine=engine, max_tokens=64)
    llm.invoke("Hello")            # or .stream / .ainvoke / .astream

The community `ChatMLX` is broken against mlx-lm 0.32 (it passes a removed `formatter`
argument); this one drives our Engine protocol, so it works with the local MLX engine and the
remote OpenAI-compatible one alike. Token counts are exact: the engine's own templated count.

Sync calls run the engine's async stream on a private event loop thread (the engine delivers
items to whichever loop awaits them), so `invoke` and `stream` work in plain scripts and inside
running loops alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from app.llm.types import Chunk, EngineError, GenerationParams, Usage

_ROLES = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> the engine's {"role", "content"} dicts (text content only)."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            role = "assistant"
        elif isinstance(m, ChatMessage) and m.role in _ROLES:
            role = _ROLES[m.role]
        else:
            raise ValueError(
                f"message {i}: {type(m).__name__} is not supported (system, human, ai only)"
            )
        out.append(
            {"role": role, "content": m.text if not isinstance(m.content, str) else m.content}
        )
    return out


def _usage_metadata(u: Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=u.prompt_tokens,
        output_tokens=u.completion_tokens,
        total_tokens=u.prompt_tokens + u.completion_tokens,
        input_token_details={"cache_read": u.cached_tokens},
    )


class _LoopThread:
    """One background event loop shared by every sync call in the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="memento-langchain", daemon=True
                ).start()
                cls._loop = loop
            return cls._loop


class MementoChat(BaseChatModel):
    """A LangChain chat model over a Memento Engine (app.llm.types.Engine)."""

    # "forbid": a misspelt argument (`max_token=`) raises instead of silently using a default
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    engine: Any = Field(description="an app.llm Engine (MLXEngine, OpenAIEngine)")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1)
    seed: int | None = None
    stop: list[str] | None = None
    cache_key: str | None = Field(
        default=None, description="reuse the KV prefix across calls under this key"
    )
    # LangChain's standard params (its standard tests pass them to every chat model)
    streaming: bool = Field(
        default=False, description="invoke() streams (callbacks get each token), as in ChatOpenAI"
    )
    timeout: float | None = Field(
        default=None, gt=0, description="seconds a whole call may take; TimeoutError after"
    )
    max_retries: int = Field(
        default=0,
        ge=0,
        description="retries of a call whose engine failed before its first token (a remote "
        "engine's server may be briefly down); a failure mid-reply is not retried",
    )

    @property
    def _llm_type(self) -> str:
        return "memento"

    @property
    def model_name(self) -> str:
        return str(getattr(self.engine, "model_id", "memento"))

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """LangChain's standard tracing params; a per-call `model` is what the trace reports."""
        params = LangSmithParams(
            ls_provider="memento",
            ls_model_name=str(kwargs.get("model", self.model_name)),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        stops = stop if stop is not None else self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": getattr(self.engine, "model_id", "?"),
            "backend": getattr(self.engine, "backend", "?"),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }

    def _params(self, stop: list[str] | None, **kwargs: Any) -> GenerationParams:
        stops = tuple(stop if stop is not None else (self.stop or ()))
        return GenerationParams(
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            max_tokens=int(kwargs.get("max_tokens", self.max_tokens)),
            seed=kwargs.get("seed", self.seed),
            stop=stops,
        )

    # -- counting -------------------------------------------------------------------------------
    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Exact: the engine's count of the templated prompt, generation prompt included."""
        if tools:
            raise ValueError("tools are not supported")
        return int(self.engine.count(to_chat_messages(messages)))

    def get_num_tokens(self, text: str) -> int:
        tokenizer = getattr(self.engine, "tokenizer", None)
        if tokenizer is not None and hasattr(tokenizer, "encode"):
            return len(tokenizer.encode(text))
        # the template's cost of one message, minus the bare message framing
        framed = self.engine.count_message({"role": "user", "content": text})
        empty = self.engine.count_message({"role": "user", "content": ""})
        return max(0, framed - empty)

    # -- async ----------------------------------------------------------------------------------
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        chat = to_chat_messages(messages)
        params = self._params(stop, **kwargs)
        cache_key = kwargs.get("cache_key", self.cache_key)
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        attempt = 0
        while True:
            started = False
            stream = self.engine.stream(chat, params, cache_key=cache_key)
            try:
                async with contextlib.aclosing(stream) as chunks:
                    while True:
                        # a per-step wait, not asyncio.timeout around the generator: the sync
                        # path resumes it from a new task for every chunk
                        left = None if deadline is None else max(0.0, deadline - loop.time())
                        try:
                            chunk = await asyncio.wait_for(anext(chunks), left)
                        except StopAsyncIteration:
                            return
                        started = True
                        gen = self._chunk(chunk)
                        if run_manager is not None and chunk.text:
                            await run_manager.on_llm_new_token(chunk.text, chunk=gen)
                        yield gen
            except EngineError:
                if started or attempt >= self.max_retries:
                    raise
                attempt += 1

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = [c async for c in self._astream(messages, stop, run_manager, **kwargs)]
        return self._result(chunks)

    # -- sync -----------------------------------------------------------------------------------
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        loop = _LoopThread.get()
        agen = self._astream(messages, stop, None, **kwargs)
        try:
            while True:
                future = asyncio.run_coroutine_threadsafe(agen.__anext__(), loop)
                try:
                    gen = future.result()
                except StopAsyncIteration:
                    return
                if run_manager is not None and gen.text:
                    run_manager.on_llm_new_token(gen.text, chunk=gen)
                yield gen
        finally:
            # leaving early (break, error) cancels generation at the next token
            asyncio.run_coroutine_threadsafe(agen.aclose(), loop).result()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(list(self._stream(messages, stop, run_manager, **kwargs)))

    # -- shaping ----------------------------------------------------------------------------------
    def _chunk(self, chunk: Chunk) -> ChatGenerationChunk:
        if chunk.finish_reason is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=chunk.text))
        usage = chunk.usage or Usage()
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=chunk.text,
                usage_metadata=_usage_metadata(usage),
                response_metadata={
                    "finish_reason": chunk.finish_reason,
                    "model_name": getattr(self.engine, "model_id", None),
                },
            ),
            generation_info={"finish_reason": chunk.finish_reason},
        )

    def _result(self, chunks: list[ChatGenerationChunk]) -> ChatResult:
        if not chunks:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=""))])
        total = chunks[0]
        for c in chunks[1:]:
            total += c
        message = AIMessage(
            content=total.message.content,
            usage_metadata=getattr(total.message, "usage_metadata", None),
            response_metadata=total.message.response_metadata,
        )
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=total.generation_info)]
        )
