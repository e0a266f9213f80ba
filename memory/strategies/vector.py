"""Strategies with recall from the vector index: vector, hybrid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, TypeVar

from pydantic import Field

from memory.base import EvictionParams
from memory.bm25 import terms
from memory.budget import position_of
from memory.speakers import without_names
from memory.strategies._buffered import BufferedStrategy
from memory.strategies._count import count_message
from memory.strategies._kept import first_kept, kept_cap, kept_part, next_kept
from memory.strategies._parts import (
    Frame,
    RecallOrder,
    finish,
    recalled_part,
    recent_part,
    start_frame,
)
from memory.strategies.summary import PrunedSummaryMixin, SummaryParams
from memory.trim import best_sentences
from memory.types import LLM, AssembleRequest, Context, ContextPart, MemoryState, StoredMessage


class RecallParams(EvictionParams):
    buffer_tokens: int = Field(default=256, ge=0, description="recent buffer cap in tokens")
    recall_k: int = Field(default=200, ge=1, le=500, description="turns asked of the recaller")
    recall_max_tokens: int | None = Field(
        default=2048,
        ge=1,
        description="cap on recalled turns in tokens (None: all the budget leaves). Recalled "
        "turns change every turn, so they are prefilled every turn: the cap bounds that cost "
        "in large context windows (~6 s per turn for 2,048 tokens on a 2-core CPU)",
    )
    neighbors: int = Field(
        default=0, ge=0, le=5, description="also show this many turns on each side of a hit"
    )
    recall_sentences: int = Field(
        default=0,
        ge=0,
        le=20,
        description="show a turn recall finds anew for the message as at most this many of "
        "its sentences, those sharing most words with the message (0: whole turns)",
    )
    # Pippa at budget_tokens 1,024: her persona and pinned facts leave ~380 tokens, which a
    # 128-token summary and a 256-token buffer used to take whole, so recall showed nothing
    # (benchmarks/korean_context.py: Korean facts 0.17 with hybrid, 0.62 with vector). At 2,048
    # the floor is far below what the caps leave anyway: nothing changes there.
    recall_min_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="share of the room after the persona, pinned facts and new message that "
        "the summary and recent buffer leave to recalled turns (a small budget is not theirs "
        "alone)",
    )
    # What recall finds anew is prefilled every turn; at 0.9 that is at most a tenth of the
    # room (~200 tokens under recall_max_tokens 2,048). Prompt tokens reused over an 80-turn
    # chat (benchmarks/cache_hits.py), vector / hybrid: 0 (before) 12% / 18%, 0.5 49% / 50%,
    # 0.75 66% / 66%, 0.9 73% / 72%.
    kept_share: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="share of the recall room for recalled turns kept in place across turns "
        "(before the recent buffer, so the KV cache keeps them); new finds join them after "
        "each reply. The rest shows what recall finds anew each turn. 0: none kept",
    )
    # In a small room a tenth is not even one note: at budget_tokens 1,024 Pippa's ~380 tokens
    # of recall room left ~38 to each message's own finds, and a live chat showed the telling
    # turn for 0.48 of the questions where a dry run (nothing kept yet) showed 0.65
    # (benchmarks/korean_context.py --live). In a large room this changes nothing.
    fresh_min_tokens: int = Field(
        default=256,
        ge=0,
        description="the least of the recall room left to what recall finds anew for each "
        "message, whatever kept_share keeps",
    )

    # A 135M model answers from what is nearest the question. LoCoMo answer F1 over 300
    # questions at budget_tokens 1,024 (benchmarks/answers.py): 0.057 in time order, 0.066 by
    # rank (0.51x -> 0.59x the oracle; 85 replies better, 68 worse); the evidence shown is the
    # same, and the part changes every turn anyway, so the KV cache loses nothing. A day's
    # finds together, in the order said ("day"), was no better (-0.003 +- 0.004 paired). Kept
    # turns stay in time order: their text must not change with the next message.
    recall_order: RecallOrder = Field(
        default="rank",
        description="how what recall finds anew for the message shows: rank (the best find "
        "last, nearest the question), time (in the order it was said) or day (a day's finds "
        "together in the order said, the best find's day last)",
    )

    # The model answers from what is nearest the question, and a small room saves little by
    # keeping: at budget_tokens 1,024 (a recall room of ~550) the split left half of a
    # session's first finds before the recent turns. LoCoMo answer F1 on 120 questions: 0.069
    # split, 0.075 all nearest the question (0.68x -> 0.73x the oracle; benchmarks/answers.py).
    # In a room of 2,048 keeping saves ~1,800 tokens of prefill a turn.
    kept_min_room: int = Field(
        default=1024,
        ge=0,
        description="a recall room smaller than this many tokens keeps nothing in place: all "
        "of a message's finds show nearest the question",
    )


def with_neighbors(
    history: Sequence[StoredMessage], ranked: Sequence[int], n: int, exclude: set[int]
) -> list[int]:
    """Each hit followed by its nearest neighbours (same priority band), duplicates dropped."""
    if n == 0:
        return list(ranked)
    out: list[int] = []
    for mid in ranked:
        p = position_of(history, mid)
        if p >= len(history) or history[p].id != mid:
            out.append(mid)  # another session's turn (memory scope): no neighbours here
            continue
        for q in [p, *(x for d in range(1, n + 1) for x in (p - d, p + d))]:
            if 0 <= q < len(history) and history[q].id not in exclude:
                out.append(history[q].id)
    return list(dict.fromkeys(out))


RP = TypeVar("RP", bound=RecallParams)
# turns of the ranking considered for cutting: more than a 2,048-token room shows
CUT_CANDIDATES = 80


def beside_kept(
    frame: Frame,
    llm: LLM,
    kept: ContextPart | None,
    found: Sequence[int],
    exclude: set[int],
    limit: int,
    neighbors: int,
) -> tuple[ContextPart | None, list[int], list[int]]:
    """The kept part, with room beside it for the question's best find: (kept, the finds not
    kept, the best of them with its neighbours). Kept turns fill most of the recall room (their
    share, 0.9), and at small budgets the rest did not hold the best find, which then showed
    only after a compaction, every REBUILD_AFTER replies: in a live chat of 24 questions, each
    about another turn (FakeRecaller), the telling turn showed for 10-18 at 500-1,000 tokens
    instead of 24. Now the newest kept chunks make way for it; the older ones stay in place."""
    while True:
        shown = {m.id for m in kept.messages if m.id is not None} if kept else set()
        hits = [i for i in found if i not in exclude and i not in shown]
        best = with_neighbors(frame.history, hits[:1], neighbors, exclude | shown)
        if kept is None or not best or not _shows(frame, llm, best, limit):
            return kept, hits, best
        if _shows(frame, llm, best, limit - kept.tokens):
            return kept, hits, best
        # the newest chunk goes (the best may have been in it: then that is what must fit)
        kept = kept_part(frame, llm, exclude, kept.tokens - 1)


def _shows(frame: Frame, llm: LLM, best: Sequence[int], room: int) -> bool:
    """Whether recall's choice within `room` shows the top hit (by the estimates it chooses by,
    which may be a few tokens above the exact count)."""
    part = recalled_part(frame, llm, best, room)
    return part is not None and best[0] in part.ranked


class RecallingStrategy(BufferedStrategy[RP]):
    uses_recall: ClassVar[bool] = True

    def buffer_limit(self) -> int | None:
        return self.params.buffer_tokens

    def recall_floor(self, frame: Frame) -> int:
        """Tokens the parts before recall must leave to it."""
        return int(max(frame.remaining, 0) * self.params.recall_min_share)

    async def recall(
        self, frame: Frame, recent: Sequence[StoredMessage], available: int
    ) -> tuple[ContextPart | None, ContextPart | None]:
        """The kept recalled turns and what recall finds anew beside them."""
        p = self.params
        limit = min(available, p.recall_max_tokens or available)
        req = frame.req
        if limit <= 0:
            return None, None
        exclude = {m.id for m in recent} | set(req.state.forgotten)
        # kept turns need no query: the Context of an empty message (app/warmup.py) has them
        kept = kept_part(frame, self.llm, exclude, limit)
        if not (frame.history or req.scope) or not req.new_message.strip():
            return kept, None  # nothing to search (recallers refuse an empty query)
        recaller = self.deps.recaller
        assert recaller is not None  # uses_recall: MemoryStrategy.__init__ refused None
        query = without_names(req.new_message, (req.user_name, req.assistant_name))
        found = await recaller.recall(
            req.session, query, frame.history, exclude, p.recall_k, req.scope
        )
        kept, hits, best = beside_kept(frame, self.llm, kept, found, exclude, limit, p.neighbors)
        exclude |= {m.id for m in kept.messages if m.id is not None} if kept else set()
        ranked = with_neighbors(frame.history, hits, p.neighbors, exclude)
        cut = self.cut_turns(frame, ranked, query)
        if kept is None and hits and p.kept_share > 0:
            room = kept_cap(limit, p.kept_share, p.fresh_min_tokens, p.kept_min_room)
            return first_kept(frame, self.llm, ranked, best, limit, room, cut, p.recall_order)
        room = limit - (kept.tokens if kept else 0)
        return kept, recalled_part(frame, self.llm, ranked, room, cut=cut, order=p.recall_order)

    def cut_turns(
        self, frame: Frame, ranked: Sequence[int], query: str
    ) -> dict[int, StoredMessage]:
        """Shorter copies of the long turns among the first CUT_CANDIDATES of `ranked`: their
        recall_sentences sentences that share most words with the message (memory/trim.py)."""
        n = self.params.recall_sentences
        words = set(terms(query)) if n else set()
        out: dict[int, StoredMessage] = {}
        if not words:
            return out
        for mid in ranked[:CUT_CANDIDATES]:
            m = frame.turn(mid)
            text = best_sentences(m.content, words, n) if m is not None else None
            if m is None or text is None:
                continue
            tokens = count_message(self.llm, m.role, text)
            out[mid] = m.model_copy(update={"content": text, "tokens": tokens})
        return out

    async def update_state(
        self,
        kept: Sequence[StoredMessage],
        state: MemoryState,
        new_messages: Sequence[StoredMessage],
        context: Context | None,
    ) -> MemoryState:
        state = await super().update_state(kept, state, new_messages, context)
        if context is not None:
            p = self.params
            next_kept(
                state,
                context,
                p.kept_share,
                p.recall_max_tokens,
                p.fresh_min_tokens,
                p.kept_min_room,
            )
        return state


class VectorStrategy(RecallingStrategy[RecallParams]):
    """Past turns relevant to the new message (recalled, dated, the best nearest the question)
    plus a short recent buffer."""

    name: ClassVar[str] = "vector"
    Params = RecallParams

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        start = self.recent_start(frame, frame.remaining - self.recall_floor(frame))
        recent = frame.history[start:]
        rest = frame.remaining - sum(m.tokens for m in recent)
        kept, recalled = await self.recall(frame, recent, rest)
        return finish(frame, kept, recalled, recent_part(recent))


class HybridParams(RecallParams, SummaryParams):
    # Smaller than summary_buffer's: here the recalled turns carry the older facts, and every
    # token they get pays (LoCoMo evidence recall 0.840 with buffer 512 + summary 256, 0.858
    # with 256 + 128: benchmarks/memory.py).
    summary_max_tokens: int = Field(
        default=128, ge=16, description="cap on the summary's size in the prompt (tokens)"
    )
    # Here recall, not the summary, answers for older turns, and the model's notes cost more
    # than they give: with a 256-token buffer a summary pass runs about every second reply,
    # 3-8 s of the one MLX thread in the gaps between warm-ups, and a pass written just before
    # the next message leaves 240-460 tokens to prefill on the clock (issue 13). At this cap
    # neither summarizer kept a planted fact (0/8, benchmarks/summaries.py), the model's notes
    # were made up ("user: I'm going to the beach tomorrow") and it failed on Korean chats.
    summarizer: Literal["llm", "extractive"] = Field(
        default="extractive",
        description="extractive: first sentence of each message (no model call); llm: notes "
        "written by the chat model (background work between turns)",
    )


class HybridStrategy(PrunedSummaryMixin[HybridParams], RecallingStrategy[HybridParams]):
    """summary_buffer + recall + pinned facts. The budget goes, in priority order, to the
    persona, pinned facts and new message (always), the summary (<= summary_max_tokens), the
    recent buffer (<= buffer_tokens) and recalled turns (the rest, <= recall_max_tokens; at
    least recall_min_share of what the first three leave)."""

    name: ClassVar[str] = "hybrid"
    Params = HybridParams

    async def assemble(self, req: AssembleRequest) -> Context:
        frame = start_frame(self.llm, req)
        floor = self.recall_floor(frame)
        # in a small room the summary takes at most half of what recall leaves, so that the
        # last exchange still shows
        summary, available = self.summary_head(frame, (frame.remaining - floor) // 2)
        start = self.recent_start(frame, available - floor)
        recent = frame.history[start:]
        rest = available - sum(m.tokens for m in recent)
        kept, recalled = await self.recall(frame, recent, rest)
        return finish(frame, summary, kept, recalled, recent_part(recent))
