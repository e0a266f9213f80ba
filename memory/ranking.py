"""The pure parts of recall: rank fusion, neighbour spreading, the in-memory dense matrix, and
the script test that picks the fusion weights (memory/recall.py puts them together)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from memory.bm25 import HANGUL_JAMO
from memory.budget import split_sentences
from memory.types import StoredMessage

# Hangul syllables and jamo, kana, Han (CJK unified and compatibility ideographs, 々),
# half-width katakana: the scripts memory/bm25.py cuts into bigrams.
_CJK_LETTER = re.compile(
    "[\u1100-\u11ff\u3005\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]"
)
# A query is "CJK" when at least this share of its letters is. Korean questions with a Latin
# vocative ("Pippa야, ...") are ~0.8; code-switched ones with a Latin content word ("우리 puppy
# 이름이 뭐였지?") ~0.35-0.65, and MiniLM matches that word: they keep the dense weight.
CJK_QUERY_SHARE = 0.7


def cjk_share(text: str) -> float:
    """The share of the letters of `text` that are Hangul, kana or Han (0.0 without letters).
    Digits, punctuation and emoji are no letters."""
    letters = cjk = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            cjk += _CJK_LETTER.match(ch) is not None
    return cjk / letters if letters else 0.0


_QUESTION_MARKS = ("?", "\uff1f")


def _content(ch: str) -> bool:
    # lone jamo (ㅋㅋ, ㅎㅎ, ㅠㅠ after a question) are laughter and tears, as in BM25's terms
    return ch.isalnum() and HANGUL_JAMO.fullmatch(ch) is None


def _asks(sentence: str) -> bool:
    tail = sentence.rstrip()
    while tail and tail[-1] not in _QUESTION_MARKS and not _content(tail[-1]):
        tail = tail[:-1]
    return tail.endswith(_QUESTION_MARKS)


@functools.lru_cache(maxsize=1 << 15)
def question_share(text: str) -> float:
    """How much `text` is a question handing the floor to the other speaker: the share of its
    letters in sentences (memory.budget split_sentences) ending with a question mark, when its
    last sentence with letters is one (emoji and ㅋㅋ after it aside); 0 when it ends on a
    statement, as "You know what I could eat every day? Grandma's kimchi stew." does. Cached
    like _text_key: recall asks it of every scored turn (~300 a query, ~3 ms uncached)."""
    sentences = [s for s in split_sentences(text) if any(map(_content, s))]
    if not sentences or not _asks(sentences[-1]):
        return 0.0
    letters = asked = 0
    for sentence in sentences:
        n = sum(ch.isalpha() for ch in sentence)
        letters += n
        asked += n if _asks(sentence) else 0
    return asked / letters if letters else 0.0


def _epoch(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def rrf(
    rankings: Sequence[tuple[Sequence[int], float]],
    k: int,
    scales: Sequence[Mapping[int, float] | None] = (),
) -> dict[int, float]:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the rankings a doc appears in.
    `scales[i]`, when given, multiplies each doc's share of ranking i (a doc it lacks: 1)."""
    out: dict[int, float] = {}
    for i, (ranking, weight) in enumerate(rankings):
        if weight <= 0:
            continue
        scale = scales[i] if i < len(scales) else None
        for rank, d in enumerate(ranking):
            w = weight if scale is None else weight * scale.get(d, 1.0)
            out[d] = out.get(d, 0.0) + w / (k + rank + 1)
    return out


def spread_to_neighbours(
    scores: dict[int, float],
    turns: Sequence[StoredMessage],
    weights: Sequence[float],
    max_gap_s: float,
    pos: dict[int, int] | None = None,
) -> dict[int, float]:
    """Each scored turn adds weights[d-1] * its score to the turns d positions away, when they
    are within `max_gap_s` of it (the same sitting, not the previous day's talk).
    `pos` maps message id -> index in `turns` (computed here when not given)."""
    if not weights or not scores:
        return dict(scores)
    if pos is None:
        pos = {m.id: i for i, m in enumerate(turns)}
    out = dict(scores)
    for mid, s in scores.items():
        i = pos.get(mid)
        if i is None:
            continue
        t0 = _epoch(turns[i].created_at)
        for dist, w in enumerate(weights, start=1):
            for j in (i - dist, i + dist):
                if 0 <= j < len(turns) and abs(_epoch(turns[j].created_at) - t0) <= max_gap_s:
                    nid = turns[j].id
                    out[nid] = out.get(nid, 0.0) + w * s
    return out


_NOT_WORD = re.compile(r"\W+")


@functools.lru_cache(maxsize=1 << 15)
def _text_key(text: str) -> str:
    """What makes a text the same as another for first_of_each_text. Cached: recall asks it
    of a couple of hundred ranked turns per query, mostly the same ones (a regex pass each
    was ~1.5 ms of a ~5 ms recall at 10k turns)."""
    return _NOT_WORD.sub("", text.casefold()) or text


def forget_text_keys() -> None:
    """Drop the cached keys and question shares (forgotten turns' texts must not linger in
    memory)."""
    _text_key.cache_clear()
    question_share.cache_clear()


def first_of_each_text(
    ranked: Sequence[int], text_of: Callable[[int], str], limit: int | None = None
) -> list[int]:
    """`ranked` with each text kept once, at its best rank. Words said again and again (a
    goodnight every evening, "ㅋㅋㅋ 아빠 귀여워") score alike and would fill the top with copies
    that say nothing new: on the Korean planted facts (benchmarks/korean_facts.py) copies held
    a tenth of the top 5. Case, spacing, punctuation and emoji do not make a text new.
    `limit`: only that many are wanted (the same first ones, found sooner)."""
    seen: set[str] = set()
    out: list[int] = []
    for d in ranked:
        key = _text_key(text_of(d))
        if key not in seen:
            seen.add(key)
            out.append(d)
            if len(out) == limit:  # the rest could only come after these
                break
    return out


# How much a full DenseCache grows by. Doubling left up to half of a matrix empty, and the
# sessions of a round-robin client (the soak run's 40) all doubled at the same turn (+3.7 MB
# at 65 turns each, +7.5 MB at 129). A quarter copies a row ~4 times over its life instead of
# ~once: 1.5 KB each, while a turn takes milliseconds to embed.
GROWTH = 1.25


class DenseCache:
    """One session's vectors as a growable matrix (rows normalised: dot product = cosine)."""

    def __init__(self, dim: int) -> None:
        self.mat = np.zeros((64, dim), dtype=np.float32)
        self.ids: list[int] = []
        self.pos: dict[int, int] = {}
        self.version = 0  # bumped by every change (memory/scope.py rebuilds views on it)
        self._lent = False  # rows() handed out a view of `mat`: copy it before changing a row
        # the rows' sum, kept as they change: their mean is what recall's centring takes off
        self.total = np.zeros(dim, dtype=np.float64)

    @property
    def nbytes(self) -> int:
        return self.mat.nbytes

    def rows(self) -> np.ndarray:
        """The vectors as they are now (row i is ids[i]), without a copy, for a reader that
        keeps them (memory/scope.py): no row of it changes afterwards, since a remove or a
        replaced vector first copies the matrix, and new rows go past its end."""
        self._lent = True
        return self.mat[: len(self.ids)]

    def _grow(self, rows: int) -> None:
        """Room for `rows` rows (all of a load at once). New rows go past the lent ones."""
        if rows > len(self.mat):
            grown = np.zeros(
                (max(rows, int(len(self.mat) * GROWTH)), self.mat.shape[1]), np.float32
            )
            grown[: len(self.ids)] = self.mat[: len(self.ids)]
            self.mat, self._lent = grown, False

    def _unshare(self) -> None:
        """Before a row changes in place."""
        if self._lent:
            self.mat, self._lent = self.mat.copy(), False

    def put(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        self.version += 1
        new = {mid for mid in ids if mid not in self.pos}
        if len(new) < len(ids):  # a vector replaced (an edit)
            self._unshare()
        self._grow(len(self.ids) + len(new))
        for mid, vec in zip(ids, vectors, strict=True):
            row = self.pos.get(mid)
            if row is None:
                row = len(self.ids)
                self.ids.append(mid)
                self.pos[mid] = row
            else:
                self.total -= self.mat[row]
            self.mat[row] = vec
            self.total += self.mat[row]

    def remove(self, mid: int) -> None:
        row = self.pos.pop(mid, None)
        if row is None:
            return
        self.version += 1
        self._unshare()  # even for the last row: the next put would write over it
        self.total -= self.mat[row]
        last = len(self.ids) - 1
        if row != last:  # move the last row into the hole
            self.mat[row] = self.mat[last]
            self.ids[row] = self.ids[last]
            self.pos[self.ids[row]] = row
        self.ids.pop()

    def top(self, query: np.ndarray, k: int, allowed: set[int]) -> list[tuple[int, float]]:
        """The k rows nearest `query` among `allowed` ids: (id, cosine), nearest first."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        # einsum, not `@`: `@` goes through OpenBLAS, whose worker threads then spin for ~0.1 s
        # on this (event loop) thread's behalf and starve the MLX thread embedding the next
        # query (p50 assembly at 10k turns: 124 ms with `@`, ~25 ms with einsum, 2 cores).
        # einsum's own loop is also faster for one vector (~1 ms vs ~7 ms).
        scores = np.einsum("ij,j->i", self.mat[:n], query)
        # Rows outside `allowed` (recent buffer, deleted turns) may crowd the top: over-fetch.
        want = min(n, k + max(0, n - len(allowed)))
        cand = np.argpartition(-scores, want - 1)[:want] if want < n else np.arange(n)
        cand = cand[np.argsort(-scores[cand], kind="stable")]
        ids = self.ids
        # tolist() converts in C: numpy scalars one by one cost ~4 ms over 100 sessions
        hits = [(ids[i], sc) for i, sc in zip(cand.tolist(), scores[cand].tolist(), strict=True)]
        return [h for h in hits if h[0] in allowed][:k]


def merge_top(lists: Sequence[Sequence[tuple[int, float]]], k: int) -> list[int]:
    """The k best ids over several (id, score) lists, each already best first; ties by id."""
    if len(lists) == 1:
        return [d for d, _ in lists[0][:k]]
    # (-score, id) tuples sort in C: a key function per item cost ~3 ms over 100 sessions
    merged = sorted([(-s, d) for lst in lists for d, s in lst])
    return [d for _, d in merged[:k]]
