"""Completions: a stateless completion's checks (content, the context window) come before
anything is generated, the count runs off the loop, and the reply collects what was streamed."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import pytest
from support.server import make_settings

from app.errors import InvalidFieldError, TooLargeError
from app.llm.types import (
    DEFAULT_MEMORY_BIAS,
    ChatMessage,
    Chunk,
    GenerationParams,
    TokenLogprob,
    Usage,
)
from app.personas.catalog import PersonaCatalog
from app.service.chat import ChatService
from app.service.completion import Completions
from app.service.turns import TurnOptions
from app.store.repo import Store
from memory.strategies._parts import RECALL_HEADER


class FakeEngine:
    """Ten tokens a message; replies "hi there" in two chunks, with logprobs when asked."""

    model_id, context_window, backend = "fake", 100, "fake"
    supports_logprobs = True

    def __init__(self) -> None:
        self.count_threads: list[int] = []
        self.params: GenerationParams | None = None

    def count(self, messages: Sequence[ChatMessage]) -> int:
        self.count_threads.append(threading.get_ident())
        return 10 * len(messages)

    def count_message(self, message: ChatMessage) -> int:
        return 10

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cache_key: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        self.params = params
        lp = [TokenLogprob(token_id=1, logprob=-0.5)] if params.logprobs is not None else None
        yield Chunk(text="hi", logprobs=lp)
        yield Chunk(text=" there", logprobs=lp)
        yield Chunk(text="", finish_reason="stop", usage=Usage(20, 0, 2))


@pytest.fixture
def completions(tmp_path: Path, store: Store) -> tuple[Completions, FakeEngine]:
    engine = FakeEngine()
    settings = make_settings(tmp_path, default_max_tokens=40, max_tokens_limit=60)
    chat = ChatService(settings, engine, store, PersonaCatalog({}))  # type: ignore[arg-type]
    return Completions(chat, engine), engine  # type: ignore[arg-type]


async def test_a_completion_streams_and_collects(
    completions: tuple[Completions, FakeEngine],
) -> None:
    service, engine = completions
    messages = [{"role": "user", "content": "hello"}]
    reply = await service.start("usr_1", messages, TurnOptions(), logprobs=0)
    assert engine.count_threads and engine.count_threads[0] != threading.get_ident()
    assert [text async for text, _ in reply.pieces()] == ["hi", " there"]
    done = await reply.result()
    assert (done.text, done.finish, done.usage.completion_tokens) == ("hi there", "stop", 2)
    assert done.logprobs is not None and len(done.logprobs) == 2
    assert engine.params is not None and engine.params.max_tokens == 40  # the server default


async def test_checks_come_before_generation(completions: tuple[Completions, FakeEngine]) -> None:
    service, engine = completions
    with pytest.raises(TooLargeError) as over:
        # 7 messages: 70 tokens, and 40 to answer, over the 100-token window
        await service.start("usr_1", [{"role": "user", "content": "hi"}] * 7, TurnOptions())
    assert over.value.code == "context_length_exceeded" and over.value.field == "messages"
    with pytest.raises(InvalidFieldError, match="must not be empty"):
        await service.start("usr_1", [{"role": "user", "content": "  "}], TurnOptions())
    assert engine.params is None  # nothing was generated


async def test_a_replayed_context_gets_its_memory_bias(
    completions: tuple[Completions, FakeEngine],
) -> None:
    """A dry run's messages sent back as a completion are answered as their turn would be: the
    notes' own words to lift, the persona and the notes' frame as what they are measured
    against (issue 12); a request without notes lifts nothing."""
    service, engine = completions
    notes = RECALL_HEADER + "On 2 March 2024:\n- Dad said: We named her Mochi."
    messages = [
        {"role": "system", "content": "You are Pippa."},
        {"role": "system", "content": notes},
        {"role": "user", "content": "What's our cat called?"},
    ]
    reply = await service.start("usr_1", messages, TurnOptions())
    assert [text async for text, _ in reply.pieces()] == ["hi", " there"]
    assert engine.params is not None and engine.params.memory_bias == DEFAULT_MEMORY_BIAS
    assert engine.params.memory_notes == ("2 March 2024", "We named her Mochi.")
    assert "You are Pippa." in engine.params.memory_common
    assert "- Dad said: " in engine.params.memory_common
    reply = await service.start("usr_1", messages[2:], TurnOptions())
    assert [text async for text, _ in reply.pieces()] == ["hi", " there"]
    assert engine.params.memory_notes == ()
