"""The persona's system message: her prompt, then as much of her example dialogue as the
budget affords.

Small models imitate an example far better than they follow a description, so the example
dialogue goes in as a transcript. But it is the persona's most expensive part (Pippa's six lines
are 312 of her 390 tokens, most of them Korean) and at a small budget it crowded out what she
remembers: at `budget_tokens` 1,024 her persona and pinned facts took 629 tokens. So, as
SillyTavern pushes example messages out when the chat needs the room, the examples yield,
whole exchanges from the end, until the persona and pinned facts take at most EXAMPLES_SHARE of
the budget. What decides it (the budget, the persona, the pinned facts) does not change from
turn to turn, so neither does the prefix the KV cache keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

EXAMPLES_HEADER = "\n\nExample conversation:\n"
EXAMPLES_SHARE = 0.5


def with_examples(prompt: str, lines: Sequence[str]) -> str:
    """The system message: the prompt, then the example lines ("아빠: ...") as a transcript."""
    return prompt + EXAMPLES_HEADER + "\n".join(lines) if lines else prompt


def fitting_examples(
    prompt: str, lines: Sequence[str], room: int, count: Callable[[str], int]
) -> int:
    """How many of `lines` (whole exchanges of two, from the start) the system message may
    hold within `room` tokens, as `count` measures it; 0 when not even the first fits."""
    n = len(lines)
    while n > 0 and count(with_examples(prompt, lines[:n])) > room:
        n -= 2 if n % 2 == 0 else 1  # a dangling line goes first, then whole exchanges
    return max(n, 0)
