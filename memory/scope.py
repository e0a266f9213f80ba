"""What recall keeps per session, and the other sessions of a memory scope searched as one.

A scope of 100 sessions x 100 turns holds as many turns as one session of 10,000, but searched
session by session it paid ~100 small numpy calls per ranking plus Python glue per session
(issue 19). `ScopeView` concatenates the scope's BM25 rows once and scores them in one pass,
and its vectors where they lie (DenseCache.rows, no copy) into one score array; it is rebuilt
only when one of those sessions changed (they are the asker's other, mostly ended, sessions),
and ranks exactly as the per-session search merged by `merge_top` did: the same float
operations per row, the same (-score, id) order.
"""

from __future__ import annotations

import asyncio
import itertools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from memory.bm25 import BM25, CorpusStats, idf, query_terms
from memory.ranking import DenseCache
from memory.types import SessionInfo, StoredMessage

_serials = itertools.count(1)
ROLES = ("user", "assistant")
# A turn's lexical state (BM25 postings, id -> text maps, history view) besides its vector:
# tracemalloc over the soak run measured ~0.9 KB for a turn of ~55 characters.
TURN_BYTES = 1024
OWNER_BYTES = 60  # an entry of ScopeView.owner (a dict of ints the sessions already hold)


@dataclass(frozen=True)
class HistoryView:
    """Where the turns were in the history list recall saw last, to extend instead of rescan.

    Their places in that list, not the messages: the list is the store's history cache's
    (app/store/history.py), and a view that held the messages kept each cached session's every
    message alive after that cache had dropped them, uncounted by either cache (the soak run,
    caches capped at 2,000 messages and 8 MB: ~2,900 StoredMessages, ~1.2 KB each, where the
    history cache held 2,000). A dropped session comes back as new objects, which rescan."""

    first: StoredMessage
    last: StoredMessage
    n: int  # messages of that history list
    at: array[int]  # index in that list of each turn
    pos: dict[int, int]  # message id -> index in turns


class SessionState:
    """One session's indexes in memory: BM25 postings and the vectors loaded from the index."""

    def __init__(self) -> None:
        self.serial = next(_serials)  # tells a reloaded (evicted, then new) state from the old
        self.view: HistoryView | None = None
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


@dataclass
class Source:
    """One session recall searches: the asker's own or another in its memory scope."""

    session: SessionInfo
    st: SessionState
    turns: list[StoredMessage]
    pos: dict[int, int]  # message id -> index in turns
    changed: bool
    exclude: set[int]

    def allowed(self) -> set[int]:
        """The turns recall may return: those of the history given, less the excluded."""
        return self.pos.keys() - self.exclude

    def any_allowed(self) -> bool:
        return len(self.pos) > len(self.exclude) or bool(self.pos.keys() - self.exclude)


def history_turns(
    st: SessionState, history: Sequence[StoredMessage]
) -> tuple[list[StoredMessage], dict[int, int], bool]:
    """The user/assistant turns of `history`, their positions, and whether any is new or
    edited since the indexes saw it. A history that extends the last one seen (the same
    message objects: the store's history cache hands them out every turn) costs only its
    new messages; anything else is one pass over all of it (10k turns: ~10 ms)."""
    v = st.view
    if v and len(history) >= v.n and history[0] is v.first and history[v.n - 1] is v.last:
        turns = [history[i] for i in v.at]
        if len(history) == v.n:
            return turns, v.pos, False
        start, at, pos = v.n, array("q", v.at), dict(v.pos)
    else:
        start, turns, at, pos = 0, [], array("q"), {}
    changed = False
    lexical, indexed = st.lexical, st.indexed
    for i in range(start, len(history)):
        m = history[i]
        c = m.content
        if m.role not in ROLES or not c or c.isspace():
            continue
        pos[m.id] = len(turns)
        turns.append(m)
        at.append(i)
        if not changed and (lexical.get(m.id) != c or indexed.get(m.id) != c):
            changed = True
    if history:
        st.view = HistoryView(history[0], history[-1], len(history), at, pos)
    return turns, pos, changed


def _stamp(sources: Sequence[Source]) -> list[tuple[int, int, int, dict[int, int]]]:
    """What a view was built from: each session's state, index versions and history turns."""
    return [
        (s.st.serial, s.st.bm25.version, s.st.dense.version if s.st.dense else -1, s.pos)
        for s in sources
    ]


def _top(scores: np.ndarray, ok: np.ndarray, ids: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (id, score) of the rows where `ok`, by (-score, id) as merge_top orders them
    (ties at the k-th score all taken, then cut: the order does not depend on row order)."""
    rows = np.flatnonzero(ok)
    if k <= 0 or not len(rows):
        return []
    if len(rows) > k:
        neg = -scores[rows]
        kth = np.partition(neg, k - 1)[k - 1]
        rows = rows[neg <= kth]
    best = sorted(zip((-scores[rows]).tolist(), ids[rows].tolist(), strict=True))[:k]
    # scores as Python floats of the float32 values, as BM25.top_scored and DenseCache.top give
    return [(d, -s) for s, d in best]


class ScopeView:
    """The sessions of a memory scope (not the asker's own, which changes every turn) as one
    BM25 row space and one vector space (their matrices, scored in one pass)."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.stamp = _stamp(sources)
        bm25 = [s.st.bm25 for s in sources]
        # one recaller's indexes are all BM25() with the same k1, b and tokenizer
        self.k1, self.b, self.terms = bm25[0].k1, bm25[0].b, bm25[0].terms
        self.n = sum(len(ix.texts) for ix in bm25)
        self.total = sum(ix.total for ix in bm25)
        rows = [len(ix.ids) for ix in bm25]
        self.offsets = np.cumsum([0, *rows[:-1]]).tolist()
        self.lengths = np.concatenate([ix.lengths[:n] for ix, n in zip(bm25, rows, strict=True)])
        self.row_ids = np.fromiter(
            itertools.chain.from_iterable(ix.ids for ix in bm25), np.int64, sum(rows)
        )
        dense = [s.st.dense for s in sources if s.st.dense is not None and s.st.dense.ids]
        # each session's vectors where they are, not concatenated: a copy held the scope's
        # vectors twice (1.5 KB an E5 turn), and was made again each time one of them changed
        self.mats = [d.rows() for d in dense]
        self.vec_ids = np.fromiter(
            itertools.chain.from_iterable(d.ids for d in dense),
            np.int64,
            sum(len(m) for m in self.mats),
        )
        # their sum (recall centres the query on the mean of all it searches); None: no vectors
        self.vec_sum = np.sum([d.total for d in dense], axis=0) if dense else None
        # message id -> the source holding it (ids are unique across a user's sessions)
        self.owner = {d: i for i, s in enumerate(sources) for d in s.pos}
        self.row_ok = np.fromiter((d in self.owner for d in self.row_ids.tolist()), bool)
        self.vec_ok = np.fromiter((d in self.owner for d in self.vec_ids.tolist()), bool)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._bm25 = bm25

    @property
    def nbytes(self) -> int:
        """What the view holds of its own (the vectors it scores are its sessions')."""
        arrays = (self.lengths, self.row_ids, self.vec_ids, self.row_ok, self.vec_ok)
        return sum(int(a.nbytes) for a in arrays) + OWNER_BYTES * len(self.owner)

    def fresh(self, sources: Sequence[Source]) -> bool:
        """Whether the view still shows exactly these sessions as they are now."""
        now = _stamp(sources)
        return len(now) == len(self.stamp) and all(
            a[:3] == b[:3] and a[3] is b[3] for a, b in zip(now, self.stamp, strict=True)
        )

    def masks(self, exclude: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """(BM25 rows, vector rows) recall may return: the scope's turns less `exclude`."""
        gone = [d for d in exclude if d in self.owner]
        if not gone:
            return self.row_ok, self.vec_ok
        drop = np.asarray(gone, dtype=np.int64)
        return (
            self.row_ok & ~np.isin(self.row_ids, drop),
            self.vec_ok & ~np.isin(self.vec_ids, drop),
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, term frequencies) of `term` over the whole view."""
        if term not in self._postings:
            parts = []
            for ix, off in zip(self._bm25, self.offsets, strict=True):
                plist = ix.postings.get(term)
                if plist:
                    rows, tf = ix.arrays(term, plist)
                    parts.append((rows + off, tf))
            self._postings[term] = (
                (np.concatenate([r for r, _ in parts]), np.concatenate([t for _, t in parts]))
                if parts
                else None
            )
        return self._postings[term]

    def corpus(self, others: Iterable[BM25], query: str) -> CorpusStats:
        """CorpusStats.of the view's indexes and `others` (the asker's), without a pass over
        the view's sessions."""
        n, total = self.n, self.total
        df = {
            t: len(p[0]) if (p := self.postings(t)) else 0
            for t, _ in query_terms(self.terms, query)
        }
        for ix in others:
            n += len(ix.texts)
            total += ix.total
            for t, _ in query_terms(ix.terms, query):
                df[t] = df.get(t, 0) + len(ix.postings.get(t, ()))
        return CorpusStats(n, total, df)

    def lexical_top(
        self, query: str, k: int, corpus: CorpusStats, ok: np.ndarray
    ) -> list[tuple[int, float]]:
        """BM25.top_scored over the whole view: the same per-row arithmetic (float32, query
        terms in the same order), so the same scores as each session's own index gives."""
        k1, b = self.k1, self.b
        n_all, total = corpus.n, corpus.total
        if not self.n:
            return []
        out = np.zeros(len(self.row_ids), dtype=np.float32)
        norm = k1 * (1 - b + b * self.lengths / (total / n_all or 1.0))
        for t, qn in query_terms(self.terms, query):
            arrays = self.postings(t)
            if arrays is None:
                continue
            rows, tf = arrays
            df = corpus.df.get(t, len(rows))
            out[rows] += idf(n_all, df) * qn * tf * (k1 + 1) / (tf + norm[rows])
        return _top(out, ok & (out != 0), self.row_ids, k)

    def dense_top(self, query: np.ndarray, k: int, ok: np.ndarray) -> list[tuple[int, float]]:
        """DenseCache.top over the whole view (einsum, not `@`: see DenseCache.top)."""
        if not len(self.vec_ids):
            return []
        scores = np.empty(len(self.vec_ids), np.float32)
        start = 0
        for mat in self.mats:  # the arithmetic of DenseCache.top, row for row
            np.einsum("ij,j->i", mat, query, out=scores[start : start + len(mat)])
            start += len(mat)
        return _top(scores, ok, self.vec_ids, k)
