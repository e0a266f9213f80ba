"""The memory strategy contract: assemble a Context before a reply, observe the turn after it."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from memory.lore.timed import after_turn
from memory.types import (
    LLM,
    AssembleRequest,
    Context,
    MemoryState,
    MemoryStrategyError,
    Recaller,
    SessionInfo,
    StoredMessage,
)

if TYPE_CHECKING:
    from memory.summarizer import Summarizer

log = logging.getLogger(__name__)


class StrategyConfigError(MemoryStrategyError, ValueError):
    """A strategy name, parameter or dependency is wrong (HTTP 422 upstream)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class StrategyParams(BaseModel):
    """Base of every strategy's Params: unknown names are an error that names them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EvictionParams(StrategyParams):
    evict_to: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="when the recent buffer is full, drop from the front down to this share of "
        "it in one chunk, so the prompt prefix (KV cache) stays stable between evictions; "
        "1.0 slides by the minimum every turn",
    )


@dataclass
class MemoryDeps:
    """What strategies need from the outside; the service builds one and shares it."""

    llm: LLM
    recaller: Recaller | None = None
    summarizer: Summarizer | None = None  # None -> the LLM summarizer on `llm`


P = TypeVar("P", bound=StrategyParams)


class MemoryStrategy(ABC, Generic[P]):
    """One memory algorithm with typed params.

    `assemble` is pure: it reads the request and never changes state or generates text, so a
    dry run (POST .../context) can call it freely. `history` must not contain the new message.
    `observe` runs after the reply was sent (off the critical path) and returns the new state;
    a failed summary never raises: the old summary stays and `summary_failures` is bumped so
    the next observe retries.
    """

    name: ClassVar[str]
    # the class of `params`, set by each strategy (`Params = WindowParams`); not a ClassVar
    # only because a ClassVar cannot hold the type variable P, which types `self.params`
    Params: type[P]
    params: P
    uses_recall: ClassVar[bool] = False

    def __init__(self, params: StrategyParams | Mapping[str, Any] | None, deps: MemoryDeps):
        if params is None or isinstance(params, Mapping):
            params = self.Params.model_validate(dict(params or {}))
        elif not isinstance(params, self.Params):
            raise StrategyConfigError(
                f"strategy {self.name!r} takes {self.Params.__name__}, got {type(params).__name__}"
            )
        if self.uses_recall and deps.recaller is None:
            raise StrategyConfigError(
                f"strategy {self.name!r} needs a recaller (the vector index), none configured",
                field="strategy",
            )
        self.params = params
        self.deps = deps

    @property
    def llm(self) -> LLM:
        return self.deps.llm

    @abstractmethod
    async def assemble(self, req: AssembleRequest) -> Context: ...

    async def observe(
        self,
        session: SessionInfo,
        history: Sequence[StoredMessage],
        state: MemoryState,
        new_messages: Sequence[StoredMessage],
        context: Context | None = None,
        *,
        upkeep: bool = True,
    ) -> MemoryState:
        """Update memory after a turn (or an import).

        history: every stored message, oldest first, new_messages included at its end.
        context: the Context the reply was generated from, when there was one; strategies with
        a recent buffer persist the cut it used (state.buffer_start_id) so the next prompt
        starts the same way and the KV prefix is reused.
        upkeep: also do the slow upkeep (model calls: the summary). The service passes False
        and runs it in a lane of its own, so that the bookkeeping the next prompt is built
        from is saved right after the reply, not after seconds of summarizing.
        """
        new_state = state.model_copy(deep=True)
        # lore entries that fired for this reply start their sticky/cooldown windows
        new_state.lore_timers = after_turn(new_state.lore_timers, context)
        await self._observe_recall(session, new_messages, new_state)
        kept = without_forgotten(history, new_state)
        new_state = await self.update_state(kept, new_state, new_messages, context)
        return await self.upkeep(kept, new_state) if upkeep else new_state

    async def upkeep(self, history: Sequence[StoredMessage], state: MemoryState) -> MemoryState:
        """The slow part of observe() (the summary): `history` without the forgotten messages;
        returns the new state, changing only its SUMMARY_FIELDS."""
        return state

    def upkeep_due(self, history: Sequence[StoredMessage], state: MemoryState) -> bool:
        """After an observe without upkeep: is there upkeep to do (a failed summary is retried
        once per turn)? `history` without the forgotten messages."""
        return False

    def backlog(self, history: Sequence[StoredMessage], state: MemoryState) -> bool:
        """Is there upkeep left to go on with without a new turn (a summary backlog after an
        import)? `history` without the forgotten messages."""
        return False

    async def update_state(
        self,
        kept: Sequence[StoredMessage],
        state: MemoryState,
        new_messages: Sequence[StoredMessage],
        context: Context | None,
    ) -> MemoryState:
        """The strategy's own bookkeeping in observe(): `kept` is the history without the
        forgotten messages, `state` a copy it may change and return. Overrides call super()
        first, so mixins and base classes apply their steps in MRO order."""
        return state

    async def _observe_recall(
        self, session: SessionInfo, new_messages: Sequence[StoredMessage], state: MemoryState
    ) -> None:
        # every strategy's turns are indexed, not only a recalling one's: a later session of
        # the user recalls from this one (memory scopes), and its first turn would otherwise
        # embed all of them on the clock (33 s for 480 turns)
        recaller = self.deps.recaller
        if not (recaller and new_messages):
            return
        forgotten = set(state.forgotten)
        keep = [m for m in new_messages if m.id not in forgotten]
        try:
            await recaller.observe(session, keep)
        except Exception:  # the reply is already out; log loudly, the state is still saved
            log.exception("vector index update failed for session %s", session.id)


def without_forgotten(history: Sequence[StoredMessage], state: MemoryState) -> list[StoredMessage]:
    forgotten = set(state.forgotten)
    return [m for m in history if m.id not in forgotten] if forgotten else list(history)


def invalidate_summary(state: MemoryState, changed_ids: Sequence[int]) -> MemoryState:
    """After messages were edited, deleted or forgotten: a summarizer's summary that covered
    any of them is dropped (its previous version kept) and the next observe rebuilds it from
    the messages, progressively, oldest first; a summary the user edited stays theirs
    (memory/user_edits.py)."""
    from memory.user_edits import after_forget

    return after_forget(state, changed_ids)
