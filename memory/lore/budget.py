"""What of the fired entries fits: each book's own `token_budget`, then the lore part's room.

A full budget drops the lowest-ranked entries first: V3 `priority` (lower first, as the spec
says), ties by `insertion_order` (lower first, as SillyTavern drops by its order). What fits is
shown in book order, then `insertion_order` (lower inserted higher, as the spec says): the same
entries always render the same text, whatever order they fired in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memory.lore.model import ActiveBook
from memory.lore.scan import Hit


@dataclass
class Fitted:
    kept: list[Hit] = field(default_factory=list)  # in render order
    dropped: list[tuple[Hit, str]] = field(default_factory=list)  # and why


def rank(h: Hit) -> tuple[int, int, int]:
    """Higher is kept first; the last tie-break keeps the entry that comes first."""
    priority, order = h.entry.rank
    return (priority, order, -h.entry_index)


def render_order(h: Hit) -> tuple[int, int, int]:
    return (h.book_index, h.entry.insertion_order, h.entry_index)


def _greedy(
    hits: Sequence[Hit], cost: Callable[[Hit], int], limit: int
) -> tuple[list[Hit], list[Hit]]:
    kept: list[Hit] = []
    out: list[Hit] = []
    for h in sorted(hits, key=rank, reverse=True):
        c = cost(h)
        if c <= limit:
            kept.append(h)
            limit -= c
        else:
            out.append(h)
    return kept, out


def fit(
    hits: Sequence[Hit],
    books: Sequence[ActiveBook],
    cost: Callable[[Hit], int],
    limit: int,
    stated: int | None = None,
) -> Fitted:
    """The hits within each book's token_budget and, together, within `limit` tokens (the
    part's room `stated` in what a dropped entry says, when the header's cost is out of it)."""
    result = Fitted()
    within: list[Hit] = []
    for b, active in enumerate(books):
        mine = [h for h in hits if h.book_index == b]
        budget = active.book.token_budget
        if budget is None or budget <= 0:
            within.extend(mine)  # V3: no budget is no limit of its own
            continue
        kept, out = _greedy(mine, cost, budget)
        within.extend(kept)
        result.dropped.extend((h, f"over its book's token_budget of {budget}") for h in out)
    kept, out = _greedy(within, cost, limit)
    result.dropped.extend(
        (h, f"over the lore part's room of {stated or limit} tokens") for h in out
    )
    result.kept = sorted(kept, key=render_order)
    return result
