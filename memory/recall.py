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
recall at 10k turns costs a few milliseconds on top of the query embedding. The other sessions
of a memory scope are searched as one index (memory/scope.py), so that 100 sessions of 100
turns cost what one of 10,000 does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from memory.bm25 import BM25, STOPWORDS, CorpusStats, query_weights, terms
from memory.ranking import (
    DenseCache,
    cjk_share,
    first_of_each_text,
    forget_text_keys,
    merge_top,
    question_share,
    rrf,
    spread_to_neighbours,
)
from memory.recall_params import RecallParams, centred
from memory.scope import ROLES, TURN_BYTES, ScopeView, SessionState, Source, history_turns
from memory.types import ScopeSession, SessionInfo, StoredMessage
from memory.vector_index import IndexRecord, VectorIndex

log = logging.getLogger(__name__)

__all__ = [
    "BM25",
    "STOPWORDS",
    "TURN_BYTES",
    "DenseCache",
    "HybridRecaller",
    "RecallParams",
    "cjk_share",
    "merge_top",
    "rrf",
    "spread_to_neighbours",
    "terms",
]

# Scope views kept (each their sessions' ids and masks, ~80 B a turn; the vectors are the
# sessions' own): a few users asking at once, one view each; another asker rebuilds its own.
MAX_VIEWS = 4


def recallable(m: StoredMessage) -> bool:
    """A message the index takes: a user or assistant turn with text."""
    return m.role in ROLES and bool(m.content.strip())


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
        self._sessions: OrderedDict[tuple[str, str], SessionState] = OrderedDict()
        # (user, asking session) -> its scope's other sessions as one index (memory/scope.py)
        self._views: OrderedDict[tuple[str, str], ScopeView] = OrderedDict()

    # -- what gets indexed --------------------------------------------------------------------
    def document(self, m: StoredMessage) -> str:
        if self.params.date_in_text:
            return f"[{m.created_at.day} {m.created_at:%B %Y}] {m.content}"
        return m.content

    def _state(self, session: SessionInfo) -> SessionState:
        key = (session.user_id, session.id)
        st = self._sessions.get(key)
        if st is None:
            st = self._sessions[key] = SessionState()
        self._sessions.move_to_end(key)
        return st

    def _evict(self) -> None:
        """LRU by bytes (after a cache grew); an evicted session reloads from the index. Scope
        views go first, all but the newest."""
        total = sum(s.nbytes for s in self._sessions.values())
        total += sum(v.nbytes for v in self._views.values())
        while len(self._views) > 1 and total > self.max_cache_bytes:
            _, view = self._views.popitem(last=False)
            total -= view.nbytes
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
        for seen in [k for k in self._views if k[0] == session.user_id]:
            del self._views[seen]  # they hold the forgotten turns' vectors (as lent)
        forget_text_keys()  # and the texts' dedupe keys and question shares
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
        if not any(s.any_allowed() for s in sources):
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
        own = sources[0]
        allowed = own.allowed()
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
            # the other sessions as one index (no await from here to the BM25 scores: the
            # view reads their postings, which an observe could change meanwhile)
            view = self._view(session, sources[1:]) if scope else None
            rows_ok, vecs_ok = view.masks(exclude_ids) if view else (None, None)
            rankings: list[tuple[Sequence[int], float]] = []
            scales: list[dict[int, float] | None] = []  # per ranking (rrf)
            if p.lexical_k:
                lists = []
                if view is not None and rows_ok is not None:
                    # one collection's statistics over all the sessions searched, so that each
                    # session's scores rank as one index over all of them would
                    corpus = view.corpus([own.st.bm25], query)
                    lists.append(view.lexical_top(query, p.lexical_k, corpus, rows_ok))
                else:
                    corpus = None
                lists.append(own.st.bm25.top_scored(query, p.lexical_k, allowed, corpus))
                lexical = merge_top(lists, p.lexical_k)
                rankings.append((lexical, lexical_weight))
                scales.append(
                    self._coverage(query, lexical, sources, view, corpus)
                    if p.covers(query)
                    else None
                )
            if embed is not None:
                qvec = np.asarray((await embed)[0], dtype=np.float32)
                if p.dense_centring:
                    qvec = centred(qvec, p.dense_centring, own.st.dense, view)
                lists = []
                if own.st.dense is not None:
                    lists.append(own.st.dense.top(qvec, p.dense_k, allowed))
                if view is not None and vecs_ok is not None:
                    lists.append(view.dense_top(qvec, p.dense_k, vecs_ok))
                rankings.append((merge_top(lists, p.dense_k), dense_weight))
        finally:
            if embed is not None and not embed.done():
                embed.cancel()
        fused = rrf(rankings, p.rrf_k, scales)
        # neighbours are turns of the same session: each hit goes to the session holding it
        # (in fused order, which the sums of spread_to_neighbours follow)
        hits: dict[int, dict[int, float]] = {}
        owner = view.owner if view is not None else {}
        for d, s in fused.items():
            if d in own.pos:
                hits.setdefault(0, {})[d] = s
            elif (i := owner.get(d)) is not None:
                hits.setdefault(i + 1, {})[d] = s
        scores: dict[int, float] = {}
        texts: dict[int, str] = {}
        for i in sorted(hits):
            src = sources[i]
            spread = spread_to_neighbours(
                hits[i], src.turns, p.neighbour_weights, p.neighbour_gap_s, src.pos
            )
            for d, s in spread.items():
                if d in src.pos and d not in exclude_ids:
                    text = src.turns[src.pos[d]].content
                    if p.question_weight < 1.0:
                        s *= 1.0 - (1.0 - p.question_weight) * question_share(text)
                    scores[d], texts[d] = s, text
        ranked = sorted(scores, key=lambda d: (-scores[d], d))
        return first_of_each_text(ranked, texts.__getitem__, limit)

    def _coverage(
        self,
        query: str,
        hits: Sequence[int],
        sources: Sequence[Source],
        view: ScopeView | None,
        corpus: CorpusStats | None,
    ) -> dict[int, float]:
        """Each BM25 hit's share of the query's term weight (RecallParams.lexical_coverage),
        read from the postings of the session's index that holds it."""
        own = sources[0]
        stats = corpus or CorpusStats.of([own.st.bm25], query)
        weights = query_weights(own.st.bm25.terms, query, stats)
        owner = view.owner if view is not None else {}

        def index_of(d: int) -> BM25:
            return (own if d in own.pos else sources[owner[d] + 1]).st.bm25

        c = self.params.lexical_coverage
        return {d: 1 - c + c * index_of(d).matched(d, weights) for d in hits}

    def _source(
        self, session: SessionInfo, history: Sequence[StoredMessage], exclude: set[int]
    ) -> Source:
        st = self._state(session)
        turns, pos, changed = history_turns(st, history)
        return Source(session, st, turns, pos, changed, exclude)

    def _view(self, asker: SessionInfo, scope: Sequence[Source]) -> ScopeView:
        """The scope's sessions as one index: the one built for the last such recall unless
        one of them changed since."""
        key = (asker.user_id, asker.id)
        view = self._views.get(key)
        if view is None or not view.fresh(scope):
            # and the user's other askers' views: each (usually) holds the sessions this
            # asker's turns change, so none would be fresh when asked again; kept, each held
            # its ids, masks and lent matrices for nothing (3 of the soak run's 4)
            for seen in [k for k in self._views if k[0] == asker.user_id]:
                del self._views[seen]
            view = self._views[key] = ScopeView(scope)
            while len(self._views) > MAX_VIEWS:  # askers that stopped asking
                self._views.popitem(last=False)
            self._evict()
        self._views.move_to_end(key)
        return view

    # -- internals ----------------------------------------------------------------------------
    async def _index(
        self, session: SessionInfo, st: SessionState, msgs: Sequence[StoredMessage]
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

    def _lexical(self, st: SessionState, msgs: Sequence[StoredMessage]) -> None:
        for m in msgs:
            if st.lexical.get(m.id) != m.content:
                st.bm25.add(m.id, self.document(m))
                st.lexical[m.id] = m.content

    async def _load_scope(self, sources: Sequence[Source]) -> None:
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
        self, st: SessionState, ids: list[int], docs: list[str], vectors: np.ndarray
    ) -> None:
        dense = DenseCache(self.index.embedder.dim)
        dense.put(ids, vectors)
        st.dense, st.stored_docs, st.indexed = dense, dict(zip(ids, docs, strict=True)), {}

    async def _load(self, session: SessionInfo, st: SessionState) -> None:
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
        self, session: SessionInfo, st: SessionState, turns: list[StoredMessage]
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
        self, session: SessionInfo, st: SessionState, stale: list[StoredMessage]
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

    def _stale(self, st: SessionState, msgs: Sequence[StoredMessage]) -> list[StoredMessage]:
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
