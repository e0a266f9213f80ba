"""`Completions`: a stateless completion over exactly the messages a client gives (OpenAI's
`POST /v1/chat/completions` without `X-Memento-Session`), and what the OpenAI routes need to
know of the model. The route parses the OpenAI body and serializes the reply; the checks a
completion shares with a session turn (content size, `max_tokens`), the generation params,
the exact count against the context window and the engine's stream are here.

The engine's blocking work (counting with the chat template, compiling a JSON schema) runs in
a worker thread: the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from app.errors import TooLargeError
from app.llm.types import Engine, TokenLogprob, Usage
from app.service.chat import ChatService
from app.service.generation import EngineReply
from app.service.turns import TurnOptions, recent_replies, with_memory


@dataclass
class Finished:
    """A completion once its stream has ended."""

    text: str
    usage: Usage
    finish: str | None  # the engine's finish reason ("stop", "length", "cancelled")
    logprobs: list[TokenLogprob] | None = None  # when asked for


class StatelessReply(EngineReply):
    """A completion being generated: iterate `pieces()` once, then read `result()`. The engine's
    stream as it comes (`EngineReply` without a cut: the engine applies the client's stops);
    nothing is stored."""

    async def result(self) -> Finished:
        lp = self.logprobs if self.want_logprobs else None
        return Finished(self.text, self.usage or Usage(), self.finish, lp)


class ServedModel:
    """The model, as the OpenAI routes describe and check it (`GET /v1/models`): one per
    request, it holds the engine and nothing of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def model_id(self) -> str:
        return self.engine.model_id

    @property
    def context_window(self) -> int:
        return self.engine.context_window

    @property
    def backend(self) -> str:
        return self.engine.backend

    @property
    def supports_json_schema(self) -> bool:
        # not every backend has the attribute (the Engine protocol leaves it out)
        return bool(getattr(self.engine, "supports_json_schema", False))

    @property
    def supports_logprobs(self) -> bool:
        return bool(getattr(self.engine, "supports_logprobs", False))

    @property
    def vocab_size(self) -> int | None:
        """The local model's vocabulary; None for a remote one (its server checks ids)."""
        tokenizer = getattr(self.engine, "tokenizer", None)
        return None if tokenizer is None else int(tokenizer.vocab_size)

    def token_bytes(self, token_id: int) -> bytes:
        """A token's raw bytes (a token may be part of a UTF-8 character): OpenAI's logprobs."""
        local: Any = self.engine  # an engine that supports_logprobs has a tokenizer
        raw: bytes = local.tokenizer.token_bytes(token_id)
        return raw

    async def check_json_schema(self, schema: str) -> None:
        """Compile the schema as decoding would (app.llm.constrained.SchemaError if it
        cannot be used); in a thread: the first one builds llguidance's tokenizer, ~0.25 s."""
        local: Any = self.engine  # an engine that supports_json_schema can check one
        await asyncio.to_thread(local.check_json_schema, schema)


class Completions(ServedModel):
    """One per request: it holds the chat service and the engine, nothing of its own."""

    def __init__(self, chat: ChatService, engine: Engine) -> None:
        super().__init__(engine)
        self.chat = chat

    # -- a completion ---------------------------------------------------------------------------
    def check_max_tokens(self, max_tokens: int | None) -> None:
        self.chat.check_max_tokens(max_tokens)

    async def start(
        self,
        user_id: str,
        messages: list[dict[str, str]],
        options: TurnOptions,
        *,
        logprobs: int | None = None,
        json_schema: str | None = None,
    ) -> StatelessReply:
        """Check and start a completion of exactly `messages`; errors (413 over the context
        window or a content limit, 422) happen before anything is generated."""
        settings = self.chat.settings
        params = options.params({}, min(settings.default_max_tokens, settings.max_tokens_limit))
        # the client's own earlier replies count as said, as a session's do
        said = recent_replies([(m["role"], m["content"]) for m in messages[:-1]])
        # a Context replayed through this route (a dry run's messages) is answered as its turn
        params = dataclasses.replace(
            with_memory(params, messages),
            penalty_context=said,
            logprobs=logprobs,
            json_schema=json_schema,
        )
        for i, m in enumerate(messages):
            if m["content"]:
                self.chat.check_content(m["content"], field=f"messages.{i}.content")
        needed = await asyncio.to_thread(self.engine.count, messages)
        window = self.engine.context_window
        if needed + params.max_tokens > window:
            raise TooLargeError(
                f"the messages take {needed} tokens; with max_tokens {params.max_tokens} that "
                f"is over the {window}-token context window",
                field="messages",
                code="context_length_exceeded",  # OpenAI's code: clients match on it
            )
        # one cache slot per user: a client that resends a growing conversation reuses its
        # prefix
        return StatelessReply(self.engine, messages, params, f"stateless:{user_id}")
