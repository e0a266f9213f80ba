"""Scoring for the answer benchmark (benchmarks/answers.py): pure functions, no model, no server.

Token F1 follows the LoCoMo paper's evaluation (snap-research/locomo, task_eval/evaluation.py):
SQuAD normalisation (lower case, punctuation and the articles a/an/the and "and" removed), F1 over
tokens; multi-hop golds (category 1) are comma-separated parts, each scored against the best
sub-answer of the reply and averaged; open-domain golds (category 3) keep the part before ";".
The paper stems tokens with NLTK's Porter stemmer; nltk is not a dependency here, so tokens are
compared unstemmed (slightly lower F1 for "went"/"go" style mismatches, the same for every row).
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”"}


def normalize(text: str) -> str:
    text = text.replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def multi_f1(prediction: str, gold: str) -> float:
    """Category 1: every comma-separated gold part against its best sub-answer of the reply."""
    preds = [p for p in prediction.split(",") if p.strip()] or [prediction]
    golds = [g for g in gold.split(",") if g.strip()] or [gold]
    return sum(max(token_f1(p, g) for p in preds) for g in golds) / len(golds)


def gold_of(answer: object, category: int) -> str:
    text = str(answer)
    return text.split(";")[0].strip() if category == 3 else text


def answer_f1(prediction: str, answer: object, category: int) -> float:
    gold = gold_of(answer, category)
    return multi_f1(prediction, gold) if category == 1 else token_f1(prediction, gold)


def contains_answer(prediction: str, answer: object, category: int) -> bool:
    """The normalised gold answer appears in the normalised reply (word-aligned)."""
    gold = normalize(gold_of(answer, category))
    return bool(gold) and f" {gold} " in f" {normalize(prediction)} "


def leak_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """A role prefix at the start of the reply or of any line, or after a space: "user:",
    "assistant:", or a name the context gives the user (the persona's user name, e.g. 아빠)."""
    alts = "|".join(re.escape(n) for n in dict.fromkeys(["user", "assistant", *names]) if n)
    return re.compile(rf"(?:^|\s)(?:{alts})\s*:", re.IGNORECASE)


def leaks(reply: str, pattern: re.Pattern[str]) -> bool:
    return pattern.search(reply) is not None


def repeats(replies: Sequence[str]) -> int:
    """How many replies repeat the one before them verbatim (normalised, non-empty)."""
    norm = [normalize(r) for r in replies]
    return sum(1 for a, b in zip(norm, norm[1:], strict=False) if b and a == b)


def loops(reply: str) -> bool:
    """The reply goes round in circles: a sentence of 3+ words said twice, or a 3-word run
    said three times ("I'm so glad you're here. I'm so glad you're here.", "no, no, no, no")."""
    sentences = [normalize(s) for s in re.split(r"[.!?\n]+", reply)]
    long = [s for s in sentences if len(s.split()) >= 3]
    if len(long) != len(set(long)):
        return True
    words = normalize(reply).split()
    grams = Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))
    return any(n >= 3 for n in grams.values())


def stratified(items: Sequence[T], key: dict[int, Sequence[int]], n: int, seed: int) -> list[T]:
    """n items, as even over the strata as they allow, drawn with a fixed seed; `key` maps each
    stratum to the indices of its items. Returned in the items' own order."""
    rng = random.Random(seed)
    pools = {k: rng.sample(list(v), len(v)) for k, v in sorted(key.items())}
    picked: list[int] = []
    while len(picked) < n and any(pools.values()):
        for k in sorted(pools):
            if pools[k] and len(picked) < n:
                picked.append(pools[k].pop())
    return [items[i] for i in sorted(picked)]
