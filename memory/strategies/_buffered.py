"""A recent buffer whose front moves in chunks; the cut persists in state.buffer_start_id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from memory.base import EvictionParams, MemoryStrategy
from memory.budget import chunked_cut, position_of
from memory.strategies._parts import Frame
from memory.types import Context, MemoryState, StoredMessage

EP = TypeVar("EP", bound=EvictionParams)


class BufferedStrategy(MemoryStrategy[EP]):
    """Shows the messages from a remembered cut to the end (a user/assistant pair is never split).

    assemble() computes the cut it would use (the remembered one, moved forward in one chunk if
    the buffer no longer fits); observe() persists the cut the reply's Context used and applies
    the strategy's own size rule, so consecutive prompts extend each other until the next
    eviction (KV prefix reuse).
    """

    def buffer_limit(self) -> int | None:
        """The buffer's own token cap from the params (None: only the budget bounds it)."""
        return None

    def evict(self, history: Sequence[StoredMessage], start: int) -> int:
        limit = self.buffer_limit()
        if limit is None:
            return start
        return chunked_cut(history, start, limit, self.params.evict_to)

    def recent_start(self, frame: Frame, available: int) -> int:
        start = position_of(frame.history, frame.req.state.buffer_start_id)
        start = self.evict(frame.history, start)
        return chunked_cut(frame.history, start, available, self.params.evict_to)

    def observed_start(
        self,
        history: Sequence[StoredMessage],
        state: MemoryState,
        new_messages: Sequence[StoredMessage],
        context: Context | None,
    ) -> int:
        start = position_of(history, state.buffer_start_id)
        if context is not None:
            recent = next((p for p in context.parts if p.kind == "recent"), None)
            ids = [m.id for m in recent.messages if m.id is not None] if recent else []
            if ids:
                start = max(start, position_of(history, ids[0]))
            elif new_messages:  # the reply's prompt showed no older message at all
                start = max(start, position_of(history, new_messages[0].id))
        return self.evict(history, start)

    @staticmethod
    def persist_start(state: MemoryState, history: Sequence[StoredMessage], start: int) -> None:
        if start < len(history):
            state.buffer_start_id = history[start].id
        elif history:
            state.buffer_start_id = history[-1].id + 1

    async def update_state(
        self,
        kept: Sequence[StoredMessage],
        state: MemoryState,
        new_messages: Sequence[StoredMessage],
        context: Context | None,
    ) -> MemoryState:
        state = await super().update_state(kept, state, new_messages, context)
        self.persist_start(state, kept, self.observed_start(kept, state, new_messages, context))
        return state
