"""Lexical retrieval: Okapi BM25 over an incrementally updated in-memory postings index.

The tokenizer (stop words dropped, light stemming) is tuned for chat turns: it keeps the rare
exact words (names, places, titles) that small dense embedders blur.

Korean glues particles and endings to the word (아빠, 아빠가, 아빠한테 are one word), and
Japanese and Chinese put no spaces between words at all, so a run of those scripts is no word:
Hangul runs lose a trailing particle or ending and are cut into overlapping syllable bigrams,
kana and Han runs into character bigrams (Lucene's CJK analyzer approach, no dictionary).
Latin text is tokenized exactly as before.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

# Hangul syllables and jamo, kana (with the prolonged sound mark), Han ideographs (with 々),
# half-width katakana.
_CJK = (
    "\u1100-\u11ff\u3005\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
)
# The Latin alternatives are the tokenizer's original ones; CJK is carved out of the catch-all
# letter class so that a Hangul run next to another letter still gets its own analysis.
_WORD = re.compile(
    rf"[a-z0-9]+(?:'[a-z]+)?|[{_CJK}]+|[^\W\d_a-z{_CJK}]+",
    re.IGNORECASE,
)
_CJK_RUN = re.compile(rf"[{_CJK}]")
_HANGUL_SYLLABLES = re.compile(r"[\uac00-\ud7af]+")
HANGUL_JAMO = re.compile(r"[\u1100-\u11ff\u3130-\u318f]+")
_STOP = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    yeah oh hey hi wow really also like get got go going know think thanks thank lot much
    can't don't doesn't didn't isn't aren't wasn't weren't won't wouldn't couldn't shouldn't
    haven't hasn't hadn't"""
STOPWORDS = frozenset(_STOP.split())
# what's, where's, i'm, you're, we've, it'll, i'd: a stop word with its verb attached
_CONTRACTIONS = ("s", "re", "ve", "ll", "d", "m")

# Particles and common verb/copula endings that follow a Korean word, stripped (longest first,
# up to twice: 에서+는, 었+어요) so 아빠가/아빠는/아빠한테 and 먹었어/먹어/먹었어요 share a stem.
# Only suffixes, never a whole run: a one-syllable noun (개, 차, 집) survives as itself.
_KO_SUFFIX_TEXT = """
    이랑 랑 하고 한테서 한테 에게서 에게 께서 께 에서
    에 으로 로 의 이 가 은 는 을 를 도 만 과 와
    이나 나 까지 부터 보다 처럼 마다 밖에 이야 야
    이에요 예요 이었어 였어 이었지 였지 이지 지 이네 네
    이라고 라고 이래 래 이라서 라서 이잖아 잖아 인데
    는데 은데 던데 었어요 았어요 였어요 했어요 었어 았어
    했어 어요 아요 해요 세요 셨어요 셨어 셨지 었지 았지
    했지 었다 았다 했다 습니다 니다 어 아 해 요 다 고
    서 면 으면 니까 을까 거든 거든요 더라 더라고 네요
    죠 지요 겠어 겠다 을게 게 래요
"""
_KO_SUFFIXES = sorted(_KO_SUFFIX_TEXT.split(), key=len, reverse=True)
_KO_SUFFIX_SET = frozenset(_KO_SUFFIXES)
# Korean question words, as stems: a run whose stem is one of these gives no terms, nor do
# they as bigrams inside a longer run. A question's 어디/뭐/언제 is never in the turn that
# answers it, and without this "이번 여름에 우리 어디로 여행 가지?" ranked turns with 어디 first.
# Only question words: pronouns (우리 고양이), determiners and fillers as stop words each cost
# recall on benchmarks/korean_facts.py (seed 11, BM25 top 5, template / paraphrase: none
# 0.595 / 0.326, question words 0.607 / 0.335, + pronouns 0.601 / 0.318, + determiners
# 0.583 / 0.322, fillers alone 0.583 / 0.318).
_KO_STOP = "뭐 무엇 누구 누가 어디 언제 왜 어떻게 어떤 무슨 몇 얼마 얼마나 어느"
KO_STOPWORDS = frozenset(_KO_STOP.split())


def _stem(word: str) -> str:
    # A light suffix stripper: enough to match "painting"/"paints"/"painted" to "paint".
    for suffix, keep in (("'s", 1), ("ies", 3), ("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            word = word[: -len(suffix)]
            if suffix == "ies":
                word += "y"
            break
    return word


Analyzer = Callable[[str], list[str]]


def hangul_stem(word: str) -> str:
    """`word` (a run of Hangul syllables) without up to two trailing particles or endings."""
    for _ in range(2):
        for suffix in _KO_SUFFIXES:
            if len(word) > len(suffix) and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        else:
            break
    return word


def bigrams(run: str) -> list[str]:
    """Overlapping character bigrams; a one-character run is its own term."""
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def hangul_terms(run: str, stop: frozenset[str] = KO_STOPWORDS) -> list[str]:
    """Syllable bigrams of the run plus its stem as a whole word.

    Bigrams match across forms the suffix list does not know (정주행 ~ 정주행하는, 넷플릭스에서 ~
    넷플릭스로); the stem matches 이름이 to 이름은 exactly and keeps a one-syllable noun (개가,
    게를) findable. benchmarks/korean_facts.py measured this mix above bigrams alone, stripping
    alone and bigrams of the stem, on several seeds.
    """
    if len(run) == 1:
        return [] if run in stop else [run]
    if run in _KO_SUFFIX_SET:
        return []  # a bare particle after a Latin word or a digit: "Netflix에서"
    stem = hangul_stem(run)
    if run in stop or stem in stop:  # 누가 is a word, not 누 + 가
        return []
    return [*(b for b in bigrams(run) if b not in stop), stem]


_KOREAN = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_CJK_PARTS = re.compile(rf"[\uac00-\ud7af]+|[\u1100-\u11ff\u3130-\u318f]+|[^{_KOREAN}]+")


def _cjk_terms(run: str, hangul: Analyzer) -> list[str]:
    out: list[str] = []
    for part in _CJK_PARTS.findall(run):
        if _HANGUL_SYLLABLES.fullmatch(part):
            out.extend(hangul(part))
        elif not HANGUL_JAMO.fullmatch(part):  # ㅋㅋ ㅠㅠ ㅇㅇ are laughter, tears, "yes"
            out.extend(bigrams(part))  # kana and Han: no word boundaries to find
    return out


def tokenize(text: str, hangul: Analyzer = hangul_terms) -> list[str]:
    """`terms` with another analyzer for Hangul runs (the Korean benchmark compares some)."""
    out = []
    for m in _WORD.finditer(text.lower()):
        w = m.group(0)
        if _CJK_RUN.match(w):
            out.extend(_cjk_terms(w, hangul))
        elif w not in STOPWORDS and (len(w) >= 2 or w.isdigit()) and not _stop_contraction(w):
            out.append(_stem(w))
    return out


def _stop_contraction(word: str) -> bool:
    base, _, tail = word.partition("'")
    return tail in _CONTRACTIONS and base in STOPWORDS


def terms(text: str) -> list[str]:
    """Lower-cased, stop-word-free, lightly stemmed word tokens; CJK runs as bigrams."""
    return tokenize(text)


@functools.lru_cache(maxsize=64)
def query_terms(tokenizer: Callable[[str], list[str]], query: str) -> tuple[tuple[str, int], ...]:
    """A query's terms with their counts, tokenized once: recall scores one query against
    every session of a memory scope (100 sessions: 100 tokenizations otherwise)."""
    return tuple(Counter(tokenizer(query)).items())


def idf(n: int, df: int) -> float:
    """Okapi BM25's inverse document frequency of a term in `df` of `n` documents."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


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
        n = total = 0
        df: Counter[str] = Counter()
        for ix in indexes:
            n += len(ix.texts)
            total += ix.total
            for t, _ in query_terms(ix.terms, query):  # each index's own tokenizer
                df[t] += len(ix.postings.get(t, ()))
        return cls(n, total, dict(df))


def query_weights(
    tokenize: Callable[[str], list[str]], query: str, corpus: CorpusStats
) -> dict[str, float]:
    """Each term of `query`: its IDF in `corpus` times its count in the query. A term no
    document holds weighs most."""
    return {t: idf(corpus.n, corpus.df.get(t, 0)) * qn for t, qn in query_terms(tokenize, query)}


class BM25:
    """Okapi BM25 over an incrementally updated in-memory postings index.

    Documents get a row; each term's postings are kept as a dict (cheap updates) and mirrored
    lazily into numpy arrays (fast scoring), rebuilt only for terms an update touched.
    """

    def __init__(
        self, k1: float = 0.9, b: float = 0.4, tokenize: Callable[[str], list[str]] = terms
    ) -> None:
        self.k1, self.b = k1, b
        self.terms = tokenize
        self.postings: dict[str, dict[int, int]] = {}  # term -> {row: term frequency}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.row: dict[int, int] = {}  # doc id -> row
        # row -> doc id; a removed doc's row stays reserved for it (no postings, length 0)
        self.ids: list[int] = []
        self.lengths = np.zeros(64, dtype=np.float32)
        self.texts: dict[int, str] = {}
        self.total = 0
        self.version = 0  # bumped by every change (memory/scope.py rebuilds views on it)

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
        self.version += 1
        tf = Counter(self.terms(text))
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
        self.version += 1
        for t in set(self.terms(text)):
            self._arrays.pop(t, None)
            plist = self.postings.get(t)
            if plist is not None:
                plist.pop(row, None)
                if not plist:
                    del self.postings[t]
        self.total -= int(self.lengths[row])
        self.lengths[row] = 0  # the row stays reserved for this id (an edit re-adds it)

    def arrays(self, term: str, plist: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, term frequencies) of `term`, whose postings are `plist`, as numpy arrays."""
        arrays = self._arrays.get(term)
        if arrays is None:
            arrays = (
                np.fromiter(plist.keys(), dtype=np.int64, count=len(plist)),
                np.fromiter(plist.values(), dtype=np.float32, count=len(plist)),
            )
            self._arrays[term] = arrays
        return arrays

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
        for t, qn in query_terms(self.terms, query):
            plist = self.postings.get(t)
            if not plist:
                continue
            rows, tf = self.arrays(t, plist)
            df = corpus.df.get(t, len(plist)) if corpus else len(plist)
            out[rows] += idf(n_all, df) * qn * tf * (k1 + 1) / (tf + norm[rows])
        return out

    def matched(self, doc_id: int, weights: dict[str, float]) -> float:
        """The share of a query's term `weights` (query_weights) that the doc holds."""
        row, total = self.row.get(doc_id), sum(weights.values())
        if row is None or total <= 0:
            return 0.0
        return sum(w for t, w in weights.items() if row in self.postings.get(t, ())) / total

    def scores(self, query: str) -> dict[int, float]:
        sc = self._scores(query)
        return {self.ids[r]: float(sc[r]) for r in np.nonzero(sc)[0]}

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
        return out[:k]
