"""BM25 and its tokenizer: pure, no model."""

from __future__ import annotations

import pytest

from memory.bm25 import BM25, terms


def test_terms_drop_stopwords_and_stem() -> None:
    assert terms("She was painting sunsets with the kids' paints!") == [
        "paint",
        "sunset",
        "kid",
        "paint",
    ]


def test_bm25_incremental_updates_equal_a_rebuild() -> None:
    docs = {i: f"doc {i} about {'cats' if i % 3 else 'dogs'} and topic{i % 4}" for i in range(40)}
    inc = BM25()
    for i, t in docs.items():
        inc.add(i, t)
    inc.add(5, "now about parrots")  # an edit
    for i in range(30, 40):
        inc.remove(i)
    docs[5] = "now about parrots"
    fresh = BM25()
    for i in range(30):
        fresh.add(i, docs[i])
    assert inc.scores("cats topic1 parrots") == pytest.approx(fresh.scores("cats topic1 parrots"))
    assert inc.top("parrots", 3) == [5]
    assert inc.top("dogs", 50, allowed={0, 3, 4}) == [0, 3]
