"""Recall of relevant past turns: dense (MiniLM, stored in Chroma) + lexical (BM25 of
memory/bm25.py), fused.

Why both: dense retrieval finds paraphrases ("my dog" ~ "the puppy"), BM25 finds the rare exact
words (names, places, titles) that small embedders blur. Reciprocal rank fusion needs no score
calibration between the two. Hits then pull in their neighbouring turns (the question before an
answer, the answer after a question), which often carry the other half of a fact.

Chroma is the store of record for the vectors. Recall scans a per-session in-memory copy of them
(loaded once from Chroma with the user+session filter, then kept current by observe): Chroma's
filtered query costs 100-700 ms at 10k turns on this CPU, an exact numpy scan ~1 ms, and exact
beats HNSW's approximation. BM25 postings live beside it, updated incrementally from the history
the caller passes (new, edited and deleted turns are detected by id and content), so a warm
recall at 10k turns costs a few milliseconds on top of the query embedding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from memory.bm25 import BM25, STOPWORDS, CorpusStats, terms
from memory.ranking import (
    CJK_QUERY_SHARE,
    DenseCache,
    cjk_share,
    merge_top,
    rrf,
    spread_to_neighbours,
)
from memory.types import ScopeSession, SessionInfo, StoredMessage
from memory.vector_index import IndexRecord, VectorIndex

log = logging.getLogger(__name__)

__all__ = [
    "BM25",
    "STOPWORDS",
    "DenseCache",
    "HybridRecaller",
    "RecallParams",
    "cjk_share",
    "merge_top",
    "rrf",
    "spread_to_neighbours",
    "terms",
]

ROLES = ("user", "assistant")
# A turn's lexical state (BM25 postings, id -> text maps, history view) besides its vector:
# tracemalloc over the soak run measured ~0.9 KB for a turn of ~55 characters.
TURN_BYTES = 1024


def recallable(m: StoredMessage) -> bool:
    """A message the index takes: a user or assistant turn with text."""
    return m.role in ROLES and bool(m.content.strip())


class RecallParams(BaseModel):
    """Tuning knobs; defaults are the ones that paid on LoCoMo (benchmarks/memory.py)."""

    dense_k: int = Field(default=30, ge=0, le=1000)  # candidates from the vector index (0: off)
    lexical_k: int = Field(default=30, ge=0, le=1000)  # candidates from BM25 (0: off)
    rrf_k: int = Field(default=30, ge=1)
    dense_weight: float = Field(default=1.0, ge=0)
    lexical_weight: float = Field(default=1.0, ge=0)
    # The dense weight for a query mostly (>= CJK_QUERY_SHARE of its letters) in Hangul, kana or
    # Han; other queries keep dense_weight. None: the embedder's own `cjk_dense_weight` (0 for
    # one that does not declare it). MiniLM is English-only, its ranking of those is close to
    # noise and, fused with equal weight, buries BM25's hits (issue 11): 0 (the query is then
    # not embedded) paid best for it. A multilingual embedder (E5) declares its measured one.
    cjk_dense_weight: float | None = Field(default=None, ge=0)
    # A hit lends this share of its score to the turns 1, 2, ... positions away (same sitting):
    # facts span a question and its answer, and evidence clusters in time.
    neighbour_weights: tuple[float, ...] = Field(default=(0.5, 0.25), max_length=5)
    neighbour_gap_s: float = Field(default=3 * 3600, ge=0)  # "same sitting": at most this apart
    date_in_text: bool = True  # index "[date] text" so dates are searchable

    def fusion_weights(self, query: str, embedder_cjk: float = 0.0) -> tuple[float, float]:
        """(dense, lexical) weights of the fusion for `query`: RecallParams' own unless the
        query is mostly CJK (cjk_share), then the dense one is cjk_dense_weight (if None,
        `embedder_cjk`, the embedder's)."""
        if cjk_share(query) >= CJK_QUERY_SHARE:
            cjk = self.cjk_dense_weight
            return (embedder_cjk if cjk is None else cjk), self.lexical_weight
        return self.dense_weight, self.lexical_weight


@dataclass
class _Source:
    """One session recall searches: the asker's own or another in its memory scope."""

    session: SessionInfo
    st: _SessionState
    turns: list[StoredMessage]
    pos: dict[int, int]
    changed: bool
    allowed: set[int]


@dataclass(frozen=True)
class _HistoryView:
    """The turns of the history list recall saw last, to extend instead of rescan."""

    first: StoredMessage
    last: StoredMessage
    n: int  # messages of that history list
    turns: list[StoredMessage]
    pos: dict[int, int]  # message id -> index in turns


class _SessionState:
    def __init__(self) -> None:
        self.view: _HistoryView | None = None
        self.bm25 = BM25()
        self.lexical: dict[int, str] = {}  # id -> content as indexed in bm25
        self.dense: DenseCache | None = None  # None until loaded from the vector index
        self.indexed: dict[int, str] = {}  # id -> content whose vector is in index and cache
        self.stored_docs: dict[int, str] = {}  # documents found in the index when loaded
        self.lock = asyncio.Lock()

    @property
    def nbytes(self) -> int:
        """Vectors plus an estimate of the lexical rest (uncounted before issue 15: the cap
        then held ~1.6x its bytes)."""
        dense = self.dense.nbytes if self.dense is not None else 0
        return dense + TURN_BYTES * len(self.lexical)


class HybridRecaller:
    """The `Recaller` (memory/types.py): dense + BM25 fusion, spread to neighbouring turns."""

    def __init__(
        self,
        index: VectorIndex,
        params: RecallParams | None = None,
        # ~80k turns of E5 vectors and lexical state. Not less: a recall scope (a user's other
        # sessions) larger than the cap reloads from the index on every turn
        max_cache_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.index = index
        self.params = params or RecallParams()
        self.max_cache_bytes = max_cache_bytes
        self._sessions: OrderedDict[tuple[str, str], _SessionState] = OrderedDict()

    # -- what gets indexed --------------------------------------------------------------------
    def document(self, m: StoredMessage) -> str:
        if self.params.date_in_text:
            return f"[{m.created_at.day} {m.created_at:%B %Y}] {m.content}"
        return m.content

    def _state(self, session: SessionInfo) -> _SessionState:
        key = (session.user_id, session.id)
        st = self._sessions.get(key)
        if st is None:
            st = self._sessions[key] = _SessionState()
        self._sessions.move_to_end(key)
        return st

    def _evict(self) -> None:
        """LRU by bytes (after a cache grew); an evicted session reloads from the index."""
        total = sum(s.nbytes for s in self._sessions.values())
        while len(self._sessions) > 1 and total > self.max_cache_bytes:
            _, old = self._sessions.popitem(last=False)
            total -= old.nbytes

    # -- Recaller -----------------------------------------------------------------------------
    async def observe(self, session: SessionInfo, messages: Sequence[StoredMessage]) -> None:
        msgs = [m for m in messages if recallable(m)]
        if not msgs:
            return
        st = self._state(session)
        async with st.lock:
            # Re-observing what is already indexed (an import then a strategy's observe) is free.
            if st.dense is None:
                await self._load(session, st)
            await self._index(session, st, self._stale(st, msgs))
            self._lexical(st, msgs)

    async def forget(self, session: SessionInfo, message_ids: Sequence[int] | None = None) -> None:
        # out of this process's search first: if the index then fails, nothing here finds them
        key = (session.user_id, session.id)
        st = self._sessions.pop(key, None) if message_ids is None else self._sessions.get(key)
        if message_ids is not None and st is not None:
            st.view = None
            for i in map(int, message_ids):
                st.bm25.remove(i)
                st.lexical.pop(i, None)
                st.indexed.pop(i, None)
                st.stored_docs.pop(i, None)
                if st.dense is not None:
                    st.dense.remove(i)
        await self.index.delete(session, message_ids)

    async def recall(
        self,
        session: SessionInfo,
        query: str,
        history: Sequence[StoredMessage],
        exclude_ids: set[int],
        limit: int,
        scope: Sequence[ScopeSession] = (),
    ) -> list[int]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if not query or not query.strip():
            raise ValueError("recall needs a non-empty query")
        for other in scope:  # defence in depth: the service builds scopes from one user's rows
            if other.session.user_id != session.user_id:
                raise ValueError("a recall scope may only hold the asking user's sessions")
        p = self.params
        sources = [self._source(session, history, exclude_ids)]
        sources += [self._source(o.session, o.history, exclude_ids) for o in scope]
        if not any(s.allowed for s in sources):
            return []
        # The query embeds on the MLX thread while the sessions sync and BM25 scores here.
        # an embedder that does not say it reads CJK is taken for English-only
        embedder_cjk = float(getattr(self.index.embedder, "cjk_dense_weight", 0.0))
        dense_weight, lexical_weight = p.fusion_weights(query, embedder_cjk)
        embed = (
            asyncio.ensure_future(self.index.embedder.embed_query([query]))
            if p.dense_k and dense_weight > 0
            else None
        )
        try:
            await self._load_scope([s for s in sources[1:] if s.st.dense is None])
            for src in sources:
                st = src.st
                if src.changed or len(st.lexical) != len(src.turns) or st.dense is None:
                    async with st.lock:
                        try:
                            await self._sync(src.session, st, src.turns)
                        except BaseException:
                            st.view = None  # the next recall rescans and retries
                            raise
            rankings: list[tuple[Sequence[int], float]] = []
            if p.lexical_k:
                # one collection's statistics over all the sessions searched, so that each
                # session's scores rank as one index over all of them would
                corpus = CorpusStats.of((s.st.bm25 for s in sources), query) if scope else None
                lists = [
                    s.st.bm25.top_scored(query, p.lexical_k, s.allowed, corpus) for s in sources
                ]
                rankings.append((merge_top(lists, p.lexical_k), lexical_weight))
            if embed is not None:
                qvec = np.asarray((await embed)[0], dtype=np.float32)
                lists = [
                    s.st.dense.top(qvec, p.dense_k, s.allowed)
                    for s in sources
                    if s.st.dense is not None
                ]
                rankings.append((merge_top(lists, p.dense_k), dense_weight))
        finally:
            if embed is not None and not embed.done():
                embed.cancel()
        fused = rrf(rankings, p.rrf_k)
        scores: dict[int, float] = {}
        for src in sources:  # neighbours are turns of the same session
            mine = {d: s for d, s in fused.items() if d in src.pos}
            if mine:
                spread = spread_to_neighbours(
                    mine, src.turns, p.neighbour_weights, p.neighbour_gap_s, src.pos
                )
                scores.update((d, s) for d, s in spread.items() if d in src.allowed)
        ranked = sorted(scores, key=lambda d: (-scores[d], d))
        return ranked[:limit]

    def _source(
        self, session: SessionInfo, history: Sequence[StoredMessage], exclude: set[int]
    ) -> _Source:
        st = self._state(session)
        turns, pos, changed = self._turns(st, history)
        return _Source(session, st, turns, pos, changed, pos.keys() - exclude)

    # -- internals ----------------------------------------------------------------------------
    def _turns(
        self, st: _SessionState, history: Sequence[StoredMessage]
    ) -> tuple[list[StoredMessage], dict[int, int], bool]:
        """The user/assistant turns of `history`, their positions, and whether any is new or
        edited since the indexes saw it. A history that extends the last one seen (the same
        message objects: the store's history cache hands them out every turn) costs only its
        new messages; anything else is one pass over all of it (10k turns: ~10 ms)."""
        v = st.view
        if v and len(history) >= v.n and history[0] is v.first and history[v.n - 1] is v.last:
            if len(history) == v.n:
                return v.turns, v.pos, False
            start, turns, pos = v.n, list(v.turns), dict(v.pos)
        else:
            start, turns, pos = 0, [], {}
        changed = False
        lexical, indexed = st.lexical, st.indexed
        for m in history[start:]:
            c = m.content
            if m.role not in ROLES or not c or c.isspace():
                continue
            pos[m.id] = len(turns)
            turns.append(m)
            if not changed and (lexical.get(m.id) != c or indexed.get(m.id) != c):
                changed = True
        if history:
            st.view = _HistoryView(history[0], history[-1], len(history), turns, pos)
        return turns, pos, changed

    async def _index(
        self, session: SessionInfo, st: _SessionState, msgs: Sequence[StoredMessage]
    ) -> None:
        if not msgs:
            return
        vectors = np.asarray(
            await self.index.embedder.embed([self.document(m) for m in msgs]), dtype=np.float32
        )
        await self.index.upsert(
            session,
            [IndexRecord(m.id, m.role, self.document(m), m.created_at) for m in msgs],
            embeddings=vectors,
        )
        if st.dense is not None:
            st.dense.put([m.id for m in msgs], vectors)
            self._evict()
        st.indexed.update((m.id, m.content) for m in msgs)

    def _lexical(self, st: _SessionState, msgs: Sequence[StoredMessage]) -> None:
        for m in msgs:
            if st.lexical.get(m.id) != m.content:
                st.bm25.add(m.id, self.document(m))
                st.lexical[m.id] = m.content

    async def _load_scope(self, sources: Sequence[_Source]) -> None:
        """The vectors of the scope's sessions not in memory yet, in one index read."""
        if not sources:
            return
        t0 = time.perf_counter()
        found = await self.index.load_sessions([s.session for s in sources])
        for src in sources:
            async with src.st.lock:  # an observe of that session may be indexing it
                if src.st.dense is None:  # or another recall loaded it meanwhile
                    self._adopt_loaded(src.st, *found[src.session.id])
        self._evict()
        log.info(
            "loaded the vectors of %d sessions in %.0f ms",
            len(sources),
            (time.perf_counter() - t0) * 1000,
        )

    def _adopt_loaded(
        self, st: _SessionState, ids: list[int], docs: list[str], vectors: np.ndarray
    ) -> None:
        dense = DenseCache(self.index.embedder.dim)
        dense.put(ids, vectors)
        st.dense, st.stored_docs, st.indexed = dense, dict(zip(ids, docs, strict=True)), {}

    async def _load(self, session: SessionInfo, st: _SessionState) -> None:
        t0 = time.perf_counter()
        ids, docs, vectors = await self.index.load(session)
        self._adopt_loaded(st, ids, docs, vectors)
        self._evict()
        log.info(
            "loaded %d vectors of session %s in %.0f ms",
            len(ids),
            session.id,
            (time.perf_counter() - t0) * 1000,
        )

    async def _sync(
        self, session: SessionInfo, st: _SessionState, turns: list[StoredMessage]
    ) -> None:
        """Bring BM25 and the vectors up to date with `turns`: cheap when nothing changed, and
        it repairs turns stored without an observe (a crash, an edit, a restart)."""
        lexical = st.lexical
        if len(lexical) != len(turns) or any(lexical.get(m.id) != m.content for m in turns):
            current = {m.id for m in turns}
            for gone in [d for d in lexical if d not in current]:
                st.bm25.remove(gone)
                del lexical[gone]
            self._lexical(st, turns)
        if st.dense is None:
            await self._load(session, st)
        stale = await self._adopt(session, st, self._stale(st, turns))
        if stale:
            log.info("indexing %d unindexed turns of session %s", len(stale), session.id)
            await self._index(session, st, stale)

    async def _adopt(
        self, session: SessionInfo, st: _SessionState, stale: list[StoredMessage]
    ) -> list[StoredMessage]:
        """Take the vectors another replica (sharing the Chroma server) already stored for
        `stale` turns instead of embedding them again; returns the turns still without one."""
        if not stale or st.dense is None:
            return stale
        ids, docs, vectors = await self.index.load(session, [m.id for m in stale])
        found = dict(zip(ids, zip(docs, vectors, strict=True), strict=True))
        adopted: list[StoredMessage]
        rest: list[StoredMessage]
        adopted, rest = [], []
        for m in stale:
            hit = found.get(m.id)
            (adopted if hit is not None and hit[0] == self.document(m) else rest).append(m)
        if adopted:
            st.dense.put([m.id for m in adopted], np.stack([found[m.id][1] for m in adopted]))
            st.indexed.update((m.id, m.content) for m in adopted)
            self._evict()
        return rest

    def _stale(self, st: _SessionState, msgs: Sequence[StoredMessage]) -> list[StoredMessage]:
        """The messages whose current text has no vector yet (new, edited, never observed)."""
        stale = []
        for m in msgs:
            if st.indexed.get(m.id) == m.content:
                continue
            if st.stored_docs.pop(m.id, None) == self.document(m):  # indexed by an earlier run
                st.indexed[m.id] = m.content
                continue
            stale.append(m)
        return stale
