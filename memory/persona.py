"""The persona's system message: her prompt, then as much of her example dialogue as the
budget affords beside the message.

Small models imitate an example far better than they follow a description, so the example
dialogue goes in as a transcript, and whole: it is worth its tokens. Pippa's six example lines
are 312 of her 390 persona tokens; at `budget_tokens` 1,024, showing four of them to leave
memory ~140 tokens more put planted facts in her context more often (Korean facts 0.667 ->
0.707, `benchmarks/korean_context.py`) but she named them less often in her replies (4/8 ->
2/8 English; with only the facts as memory 5/8 -> 4/8: `benchmarks/answers.py --parts
planted`). So the examples yield only to a message that would not fit beside them, whole
exchanges from the end, rather than fail the turn with a 413.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

EXAMPLES_HEADER = "\n\nExample conversation:\n"


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
