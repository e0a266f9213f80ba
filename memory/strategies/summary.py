"""Strategies with a running summary: summary, summary_buffer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, TypeVar

from pydantic import Field

from memory.base import EvictionParams, MemoryStrategy, StrategyParams
from memory.budget import newest_fit, position_of
from memory.strategies._buffered import BufferedStrategy
from memory.strategies._parts import Frame, finish, recent_part, start_frame, summary_part
from memory.summarizer import ExtractiveSummarizer, LLMSummarizer, Summarizer, update_summary
from memory.types import AssembleRequest, Context, ContextPart, MemoryState, StoredMessage


class SummaryParams(StrategyParams):
    summary_max_tokens: int = Field(
        default=256, ge=16, description="cap on the summary's size in the prompt (tokens)"
    )
    summarizer: Literal["llm", "extractive"] = Field(
        default="llm",
        description="llm: notes written by the chat model; extractive: first sentence of each "
        "message (no model call; fast imports)",
    )
    summary_chunk_tokens: int = Field(
        default=768, ge=32, description="messages summarized per model call (stored tokens)"
    )
    summary_max_chunks: int | None = Field(
        default=4,
        ge=1,
        description="model calls per observe; after an import, further observes follow in "
        "the background until the backlog is worked off",
    )


def covered_end(history: Sequence[StoredMessage], state: MemoryState) -> int:
    """Position after the newest message the summary covers (it grows oldest first)."""
    covers = state.draft_covers or state.summary_covers  # a draft goes on from the summary
    if not covers:
        return 0
    return position_of(history, max(covers) + 1)


SP = TypeVar("SP", bound=SummaryParams)


class SummarizingMixin(MemoryStrategy[SP]):
    """The running summary's part of a strategy: put it first among the bases, before
    MemoryStrategy or BufferedStrategy, so its upkeep methods are the ones used."""

    def summarizer(self) -> Summarizer:
        if self.params.summarizer == "extractive":
            return ExtractiveSummarizer()
        return self.deps.summarizer or LLMSummarizer(self.deps.llm)

    def summary_head(self, frame: Frame, room: int | None = None) -> tuple[ContextPart | None, int]:
        """The summary part (within summary_max_tokens and `room`) and the budget it leaves."""
        state, llm = frame.req.state, self.deps.llm
        limit = min(frame.remaining if room is None else room, self.params.summary_max_tokens)
        summary = summary_part(llm, state.summary, state.summary_covers, limit)
        return summary, frame.remaining - (summary.tokens if summary else 0)

    def summary_end(self, history: Sequence[StoredMessage], state: MemoryState) -> int:
        """Position after the newest message the summary should cover."""
        return len(history)

    def upkeep_due(self, history: Sequence[StoredMessage], state: MemoryState) -> bool:
        return covered_end(history, state) < self.summary_end(history, state)

    def backlog(self, history: Sequence[StoredMessage], state: MemoryState) -> bool:
        # a failing summarizer waits for the next turn instead of being retried in a loop
        return state.summary_failures == 0 and self.upkeep_due(history, state)

    async def upkeep(self, history: Sequence[StoredMessage], state: MemoryState) -> MemoryState:
        return await self.summarize_until(history, state, self.summary_end(history, state))

    async def summarize_until(
        self, history: Sequence[StoredMessage], state: MemoryState, end: int
    ) -> MemoryState:
        pending = history[covered_end(history, state) : end]
        if not pending:
            return state
        return await update_summary(
            self.summarizer(),
            self.deps.llm,
            state,
            pending,
            cap_tokens=self.params.summary_max_tokens,
            chunk_tokens=self.params.summary_chunk_tokens,
            max_chunks=self.params.summary_max_chunks,
        )


class PrunedSummaryMixin(SummarizingMixin[SP]):
    """Upkeep for buffered strategies: summarize what the buffer's cut has left behind."""

    def summary_end(self, history: Sequence[StoredMessage], state: MemoryState) -> int:
        return position_of(history, state.buffer_start_id)  # what the recent buffer left


class SummaryStrategy(SummarizingMixin[SummaryParams]):
    """One running summary of the whole conversation, plus (verbatim) whatever it does not
    cover yet: normally nothing, but a failed or still-running summary loses no turn."""

    name: ClassVar[str] = "summary"
    Params = SummaryParams

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        summary, available = self.summary_head(frame)
        start = newest_fit(frame.history, available, covered_end(frame.history, req.state))
        return finish(frame, summary, recent_part(frame.history[start:]))


class SummaryBufferParams(SummaryParams, EvictionParams):
    max_tokens: int = Field(default=1024, ge=1, description="recent buffer cap in tokens")


class SummaryBufferStrategy(
    PrunedSummaryMixin[SummaryBufferParams], BufferedStrategy[SummaryBufferParams]
):
    """A recent buffer up to max_tokens plus a progressive summary of everything pruned from it.

    LangChain's ConversationSummaryBufferMemory, with its two flaws fixed: the summary is
    counted against the budget and bounded (summary_max_tokens), and the buffer is cut only
    between turns. Pruning happens in chunks (evict_to), so the summary changes, and the
    prompt prefix with it, only once per chunk.
    """

    name: ClassVar[str] = "summary_buffer"
    Params = SummaryBufferParams

    def buffer_limit(self) -> int | None:
        return self.params.max_tokens

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        summary, available = self.summary_head(frame)
        start = self.recent_start(frame, available)
        return finish(frame, summary, recent_part(frame.history[start:]))
