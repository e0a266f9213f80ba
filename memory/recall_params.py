"""The recaller's tuning knobs (RecallParams) and the query centring they drive: what
memory/recall.py's HybridRecaller ranks by, apart from how it searches."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from memory.ranking import CJK_QUERY_SHARE, DenseCache, cjk_share
from memory.scope import ScopeView


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
    # How much a BM25 hit's share of the query's term weight (IDF) counts in the fusion: the
    # hit counts (1 - c) + c * share. A turn that shares only "time" with "What's my all-time
    # favourite dish?" is weak evidence, yet ranked first by BM25 it outweighed the dense
    # ranking's second, the telling turn (benchmarks/cross_session.py --parts planted).
    # 0: every hit counts whole.
    lexical_coverage: float = Field(default=0.25, ge=0.0, le=1.0)
    # The query minus this multiple of the searched turns' mean vector: a turn near the mean
    # (small talk like "그래서 어떻게 됐어?", "Okay okay, got it!") is near every query and
    # crowded the top; centring ranks by what sets a turn apart. 0: plain cosine.
    dense_centring: float = Field(default=0.5, ge=0.0, le=4.0)
    # A found turn's score is multiplied by 1 - (1 - question_weight) * its question share
    # (memory.ranking.question_share): a question rarely holds what a later question asks
    # about ("친구 생일 선물 뭐 사지?" shares 친구 with "제일 친한 친구가 누구였더라?"). At 0.5 the
    # evidence shown rose (LoCoMo at 1,024 0.814 -> 0.826, Korean template top 3 0.682 -> 0.717)
    # but the embedded model's answers did not (LoCoMo F1 flat, planted English 19/24 -> 17/24:
    # the statements that replace the questions are other facts it mixes up). 1: off.
    question_weight: float = Field(default=1.0, ge=0.0, le=1.0)

    def fusion_weights(self, query: str, embedder_cjk: float = 0.0) -> tuple[float, float]:
        """(dense, lexical) weights of the fusion for `query`: RecallParams' own unless the
        query is mostly CJK (cjk_share), then the dense one is cjk_dense_weight (if None,
        `embedder_cjk`, the embedder's)."""
        if cjk_share(query) >= CJK_QUERY_SHARE:
            cjk = self.cjk_dense_weight
            return (embedder_cjk if cjk is None else cjk), self.lexical_weight
        return self.dense_weight, self.lexical_weight

    def covers(self, query: str) -> bool:
        """Do BM25 hits count by their share of the query (lexical_coverage)? Not for a query
        mostly in CJK: its bigrams across particles and endings (했지, 뭐였) are in no turn, so
        a share of them says how the question was spelled, not what it asks (Korean planted
        facts 8/8 -> 5/8 with them counted)."""
        return self.lexical_coverage > 0 and cjk_share(query) < CJK_QUERY_SHARE


CENTRING_RAMP = 64  # turns searched at which centring counts half


def centred(
    query: np.ndarray, c: float, own: DenseCache | None, view: ScopeView | None
) -> np.ndarray:
    """`query` minus c times the mean of every vector searched (the session's and the scope
    view's alike, so that their scores stay comparable)."""
    total, n = np.zeros_like(query, dtype=np.float64), 0
    if own is not None:
        total, n = total + own.total, n + len(own.ids)
    if view is not None and view.vec_sum is not None:
        total, n = total + view.vec_sum, n + len(view.vec_ids)
    # The mean of a few dozen turns is mostly those turns themselves: centring on it would
    # push the telling turn away from its own question. It counts fully as turns add up.
    c *= n / (n + CENTRING_RAMP)
    return query if n == 0 else (query - c * total / n).astype(np.float32)
