"""Lexical retrieval: Okapi BM25 over an incrementally updated in-memory postings index.

The tokenizer (stop words dropped, light stemming) is tuned for chat turns: it keeps the rare
exact words (names, places, titles) that small dense embedders blur.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\W\d_a-z]+", re.IGNORECASE)
_STOP = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    yeah oh hey hi wow really also like get got go going know think thanks thank lot much"""
STOPWORDS = frozenset(_STOP.split())


def _stem(word: str) -> str:
    # A light suffix stripper: enough to match "painting"/"paints"/"painted" to "paint".
    for suffix, keep in (("'s", 1), ("ies", 3), ("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            word = word[: -len(suffix)]
            if suffix == "ies":
                word += "y"
            break
    return word


def terms(text: str) -> list[str]:
    """Lower-cased, stop-word-free, lightly stemmed word tokens."""
    out = []
    for m in _WORD.finditer(text.lower()):
        w = m.group(0)
        if w in STOPWORDS or len(w) < 2 and not w.isdigit():
            continue
        out.append(_stem(w))
    return out


@dataclass(frozen=True)
class CorpusStats:
    """Document count, total length and document frequencies of a query's terms over several
    BM25 indexes: scored with these, each index ranks its documents as one index over all of
    them would (cross-session recall searches one index per session)."""

    n: int
    total: int
    df: dict[str, int]

    @classmethod
    def of(cls, indexes: Iterable[BM25], query: str) -> CorpusStats:
        qterms = set(terms(query))
        n = total = 0
        df: Counter[str] = Counter()
        for ix in indexes:
            n += len(ix.texts)
            total += ix.total
            for t in qterms:
                df[t] += len(ix.postings.get(t, ()))
        return cls(n, total, dict(df))


class BM25:
    """Okapi BM25 over an incrementally updated in-memory postings index.

    Documents get a row; each term's postings are kept as a dict (cheap updates) and mirrored
    lazily into numpy arrays (fast scoring), rebuilt only for terms an update touched.
    """

    def __init__(self, k1: float = 0.9, b: float = 0.4) -> None:
        self.k1, self.b = k1, b
        self.postings: dict[str, dict[int, int]] = {}  # term -> {row: term frequency}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.row: dict[int, int] = {}  # doc id -> row
        self.ids: list[int | None] = []  # row -> doc id (None: removed)
        self.lengths = np.zeros(64, dtype=np.float32)
        self.texts: dict[int, str] = {}
        self.total = 0

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, doc_id: int, text: str) -> None:
        if doc_id in self.texts:
            if self.texts[doc_id] == text:
                return
            self.remove(doc_id)
        row = self.row.get(doc_id)
        if row is None:
            row = self.row[doc_id] = len(self.ids)
            self.ids.append(doc_id)
            if row == len(self.lengths):
                self.lengths = np.concatenate([self.lengths, np.zeros_like(self.lengths)])
        self.ids[row] = doc_id
        tf = Counter(terms(text))
        for t, n in tf.items():
            self.postings.setdefault(t, {})[row] = n
            self._arrays.pop(t, None)
        length = sum(tf.values())
        self.lengths[row] = length
        self.texts[doc_id] = text
        self.total += length

    def remove(self, doc_id: int) -> None:
        text = self.texts.pop(doc_id, None)
        if text is None:
            return
        row = self.row[doc_id]
        for t in set(terms(text)):
            self._arrays.pop(t, None)
            plist = self.postings.get(t)
            if plist is not None:
                plist.pop(row, None)
                if not plist:
                    del self.postings[t]
        self.total -= int(self.lengths[row])
        self.lengths[row] = 0  # the row stays reserved for this id (an edit re-adds it)

    def _scores(self, query: str, corpus: CorpusStats | None = None) -> np.ndarray:
        """BM25 score per row (0 where no query term occurs); `corpus`: the statistics of a
        larger collection this index is part of (IDF and average length from there)."""
        n_rows, n = len(self.ids), len(self.texts)
        out = np.zeros(n_rows, dtype=np.float32)
        if not n:
            return out
        k1, b = self.k1, self.b
        n_all, total = (corpus.n, corpus.total) if corpus else (n, self.total)
        norm = k1 * (1 - b + b * self.lengths[:n_rows] / (total / n_all or 1.0))
        for t, qn in Counter(terms(query)).items():
            plist = self.postings.get(t)
            if not plist:
                continue
            arrays = self._arrays.get(t)
            if arrays is None:
                arrays = (
                    np.fromiter(plist.keys(), dtype=np.int64, count=len(plist)),
                    np.fromiter(plist.values(), dtype=np.float32, count=len(plist)),
                )
                self._arrays[t] = arrays
            rows, tf = arrays
            df = corpus.df.get(t, len(plist)) if corpus else len(plist)
            idf = math.log(1.0 + (n_all - df + 0.5) / (df + 0.5)) * qn
            out[rows] += idf * tf * (k1 + 1) / (tf + norm[rows])
        return out

    def scores(self, query: str) -> dict[int, float]:
        sc = self._scores(query)
        return {self.ids[r]: float(sc[r]) for r in np.nonzero(sc)[0]}  # type: ignore[misc]

    def top(
        self,
        query: str,
        k: int,
        allowed: set[int] | None = None,
        corpus: CorpusStats | None = None,
    ) -> list[int]:
        """The k best-scoring doc ids (only those in `allowed`, when given); ties by id."""
        return [d for d, _ in self.top_scored(query, k, allowed, corpus)]

    def top_scored(
        self,
        query: str,
        k: int,
        allowed: set[int] | None = None,
        corpus: CorpusStats | None = None,
    ) -> list[tuple[int, float]]:
        """top() with each doc's score."""
        sc = self._scores(query, corpus)
        hits = np.nonzero(sc)[0]
        if not len(hits) or k <= 0:
            return []
        # Excluded docs may crowd the top: over-fetch by how many could be excluded.
        extra = 0 if allowed is None else max(0, len(self.texts) - len(allowed))
        want = min(len(hits), k + extra)
        if want < len(hits):
            hits = hits[np.argpartition(-sc[hits], want - 1)[:want]]
        ids = self.ids
        order = sorted(hits.tolist(), key=lambda r: (-sc[r], ids[r]))
        out = [(ids[r], float(sc[r])) for r in order if allowed is None or ids[r] in allowed]
        return out[:k]  # type: ignore[return-value]
