"""Pure functions that fit stored messages into a token budget.

Every function works on the per-message `tokens` stored beside each message (computed once by
the engine when the message was stored), so fitting a 10k-message history sums ints and never
re-tokenizes it. Cuts are positions in an oldest-first list and always fall on a turn boundary:
a user message and the assistant reply that follows it are kept or dropped together.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

from memory.types import StoredMessage

__all__ = [
    "chunked_cut",
    "fit_text",
    "is_turn_start",
    "last_turns_start",
    "newest_fit",
    "position_of",
    "snap_forward",
    "split_sentences",
    "tokens_of",
]


def tokens_of(messages: Sequence[StoredMessage], start: int = 0, end: int | None = None) -> int:
    return sum(m.tokens for m in messages[start:end])


def is_turn_start(messages: Sequence[StoredMessage], i: int) -> bool:
    """Whether a cut may fall before messages[i] (it would not orphan an assistant reply)."""
    if i <= 0 or i >= len(messages):
        return True
    return not (messages[i].role == "assistant" and messages[i - 1].role == "user")


def snap_forward(messages: Sequence[StoredMessage], i: int) -> int:
    """The first turn boundary at or after position i."""
    i = max(0, min(i, len(messages)))
    while not is_turn_start(messages, i):
        i += 1
    return i


def position_of(messages: Sequence[StoredMessage], message_id: int | None) -> int:
    """Position of the first message whose id is >= message_id (ids ascend with position).

    A cut remembered by id survives deletions: it lands on the next message still there.
    """
    if message_id is None:
        return 0
    return bisect.bisect_left(messages, message_id, key=lambda m: m.id)


def newest_fit(messages: Sequence[StoredMessage], limit: int, start: int = 0) -> int:
    """Smallest turn-boundary position p >= start such that messages[p:] fit in `limit` tokens.

    Walks back from the newest message, so the work is O(what fits), not O(history).
    Returns len(messages) when not even the newest turn fits.
    """
    total, p = 0, len(messages)
    while p > start and total + messages[p - 1].tokens <= limit:
        p -= 1
        total += messages[p].tokens
    return snap_forward(messages, p)


def chunked_cut(messages: Sequence[StoredMessage], start: int, limit: int, evict_to: float) -> int:
    """Cache-friendly eviction: keep the cut at `start` while messages[start:] fit in `limit`;
    once they do not, move it forward in one chunk so what is left fits in evict_to * limit.

    Between evictions the kept messages only grow at the end, so consecutive prompts share
    their prefix and the engine's KV cache is reused; an eviction costs one re-prefill.
    """
    start = snap_forward(messages, start)
    if tokens_of(messages, start) <= limit:
        return start
    return newest_fit(messages, int(limit * evict_to), start)


def last_turns_start(messages: Sequence[StoredMessage], k: int, start: int = 0) -> int:
    """Position where the last k turns begin (a turn opens at every turn boundary)."""
    if k <= 0:
        return len(messages)
    seen, p = 0, len(messages)
    while p > start:
        p -= 1
        if is_turn_start(messages, p):
            seen += 1
            if seen == k:
                return p
    return snap_forward(messages, start)


def turns_in(messages: Sequence[StoredMessage], start: int) -> int:
    return sum(1 for i in range(start, len(messages)) if is_turn_start(messages, i))


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences and lines, stripped."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def fit_text(text: str, fits: Callable[[str], bool], keep: str = "head") -> str:
    """The longest run of whole sentences (from the head or the tail) for which fits() holds,
    cut from the original text (its line breaks and bullets are kept).

    Binary search over the sentence boundaries, so O(log n) calls to fits() (each may
    tokenize). Returns "" when not even one sentence fits.
    """
    if fits(text):
        return text
    cuts = [m.start() if keep == "head" else m.end() for m in _SENTENCE_END.finditer(text)]
    if keep == "head":
        pieces = [text[:c].rstrip() for c in cuts]  # shortest first
    else:
        pieces = [text[c:].lstrip() for c in reversed(cuts)]
    pieces = [p for p in pieces if p.strip()]
    lo, hi = -1, len(pieces)  # pieces[lo] fits (or none); pieces[hi] (the whole) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(pieces[mid]):
            lo = mid
        else:
            hi = mid
    return pieces[lo] if lo >= 0 else ""
