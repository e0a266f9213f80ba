"""Strategies without summaries or recall: buffer, window, token_buffer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from memory.base import EvictionParams, MemoryStrategy, StrategyParams
from memory.budget import last_turns_start, tokens_of, turns_in
from memory.strategies._buffered import BufferedStrategy
from memory.strategies._parts import finish, recent_part, start_frame
from memory.types import AssembleRequest, Context, ContextOverflowError, StoredMessage


class BufferParams(StrategyParams):
    pass


class BufferStrategy(MemoryStrategy[BufferParams]):
    """Everything, verbatim. When it no longer fits: ContextOverflowError, never a silent cut."""

    name: ClassVar[str] = "buffer"
    Params = BufferParams

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        total = tokens_of(frame.history)
        if total > frame.remaining:
            raise ContextOverflowError(
                req.budget - frame.remaining + total,
                req.budget,
                "whole conversation (the buffer strategy never drops a message; token_buffer or "
                "summary_buffer bound it)",
            )
        return finish(frame, recent_part(frame.history))


class WindowParams(EvictionParams):
    k: int = Field(default=10, ge=1, le=100_000, description="at most this many recent turns")


class WindowStrategy(BufferedStrategy[WindowParams]):
    """The last k turns (a turn: a user message and its reply). Once there are more than k, it
    drops back to evict_to * k turns in one go (evict_to=1: a strict sliding window)."""

    name: ClassVar[str] = "window"
    Params = WindowParams

    def evict(self, history: Sequence[StoredMessage], start: int) -> int:
        k = self.params.k
        if turns_in(history, start) <= k:
            return start
        return last_turns_start(history, max(1, int(k * self.params.evict_to)), start)

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        start = self.recent_start(frame, frame.remaining)
        return finish(frame, recent_part(frame.history[start:]))


class TokenBufferParams(EvictionParams):
    max_tokens: int = Field(default=1024, ge=1, description="recent buffer cap in tokens")


class TokenBufferStrategy(BufferedStrategy[TokenBufferParams]):
    """The most recent messages that fit in max_tokens (and the budget), evicted in chunks."""

    name: ClassVar[str] = "token_buffer"
    Params = TokenBufferParams

    def buffer_limit(self) -> int | None:
        return self.params.max_tokens

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        start = self.recent_start(frame, frame.remaining)
        return finish(frame, recent_part(frame.history[start:]))
