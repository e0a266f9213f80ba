"""The words the Context's last block of recalled notes quotes, apart from their frame: what a
reply's memory bias lifts (issue 12, `GenerationParams.memory_bias`).

A recalled block reads "Notes on what was said earlier ... (memory, not the chat):", then "On 2
March 2024:", then "- Dad said: we named her Mochi". Lifting the frame's tokens ("said", ":",
the speakers' names) would only make a reply sound like the notes; the quoted words and the
dates are the memory. Only the last block counts: the recalling strategies put what this message
found nearest the question, after the recent turns, and the turns kept from earlier messages
before them. Lifting every block's words spread the lift over a dozen turns about other things:
on 60 LoCoMo questions the gold answer was in 0.017 of the replies (0.033 without the lift),
with the last block alone in 0.067, and its day lines' dates lifted too (they answer "when")
F1 0.064 -> 0.073. Everything else the model reads as system text (persona,
pinned facts, summary, lore, the notes' frame) is what the words are measured against: a token
there is not the memory's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from memory.speakers import DAY_LINE, NOTE_OPENING
from memory.strategies._parts import RECALL_HEADER, SCOPE_HEADER

_HEADERS = {RECALL_HEADER.rstrip("\n"), SCOPE_HEADER.rstrip("\n")}


def split_notes(texts: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(what the last block of notes among `texts` quotes and its dates, everything else but
    the earlier blocks' quotes and dates): a text holding a day's line is a block of notes; its
    headers, the "On ...:" around its dates and its "- X said: " openings count with the
    other texts."""
    notes: list[str] = []
    rest: list[str] = []
    for text in texts:
        day = DAY_LINE.search(text)
        if day is None:
            rest.append(text)
            continue
        notes = []  # a later block: the earlier ones' words are neither lifted nor common
        rest.append(text[: day.start()].rstrip("\n"))
        for line in text[day.start() :].splitlines():
            opening, date = NOTE_OPENING.match(line), DAY_LINE.fullmatch(line)
            if date is not None:  # the date is the memory's: it answers "when"
                notes.append(date.group(1))
                rest.append(line[: date.start(1)] + line[date.end(1) :])
            elif line in _HEADERS:
                rest.append(line)
            elif opening is not None:
                rest.append(line[: opening.end()])
                notes.append(line[opening.end() :])
            else:  # a note's own next line
                notes.append(line)
    return _nonblank(notes), _nonblank(rest)


def _nonblank(texts: list[str]) -> tuple[str, ...]:
    return tuple(t for t in texts if t.strip())
