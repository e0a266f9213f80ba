"""A long recalled turn cut to the sentences the message asks about (issue 12: fewer tokens per
note, so that the room nearest the question holds more of the turns recall found)."""

from __future__ import annotations

from collections.abc import Collection

from memory.bm25 import terms
from memory.budget import split_sentences

ELISION = "…"


def best_sentences(text: str, query: Collection[str], n: int) -> str | None:
    """`text` cut to at most `n` of its sentences, those sharing most of the `query` terms
    (memory.bm25.terms), kept in their order with "…" where sentences were left out. None when
    there is nothing to cut by: `n` sentences or fewer, or none shares a term (a turn the dense
    ranking found for its meaning shows whole)."""
    sentences = split_sentences(text)
    if n <= 0 or len(sentences) <= n or not query:
        return None
    wanted = set(query)
    shared = [len(wanted.intersection(terms(s))) for s in sentences]
    best = sorted((i for i, k in enumerate(shared) if k > 0), key=lambda i: -shared[i])[:n]
    if not best:
        return None
    out: list[str] = []
    last = -1
    for i in sorted(best):
        if i != last + 1:
            out.append(ELISION)
        out.append(sentences[i])
        last = i
    if last != len(sentences) - 1:
        out.append(ELISION)
    return " ".join(out)
