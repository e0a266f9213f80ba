"""The words the Context's recalled notes quote, apart from their frame: what a reply's memory
bias lifts (issue 12, `GenerationParams.memory_bias`).

A recalled block reads "Notes on what was said earlier ... (memory, not the chat):", then "On 2
March 2024:", then "- Dad said: we named her Mochi". Lifting the frame's tokens ("said", ":",
the speakers' names, the month) would only make a reply sound like the notes; the quoted words
are the memory. Everything else the model reads as system text (persona, pinned facts, summary,
lore) is what the notes' words are measured against: a token there is not the memory's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from memory.speakers import DAY_LINE, NOTE_OPENING
from memory.strategies._parts import RECALL_HEADER, SCOPE_HEADER

_HEADERS = {RECALL_HEADER.rstrip("\n"), SCOPE_HEADER.rstrip("\n")}


def split_notes(texts: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(what the recalled notes among `texts` quote, everything else): a text holding a day's
    line is a block of notes; its headers, day lines and "- X said: " openings count with
    the other texts."""
    notes: list[str] = []
    rest: list[str] = []
    for text in texts:
        day = DAY_LINE.search(text)
        if day is None:
            rest.append(text)
            continue
        rest.append(text[: day.start()].rstrip("\n"))
        for line in text[day.start() :].splitlines():
            opening = NOTE_OPENING.match(line)
            if line in _HEADERS or DAY_LINE.fullmatch(line):
                rest.append(line)
            elif opening is not None:
                rest.append(line[: opening.end()])
                notes.append(line[opening.end() :])
            else:  # a note's own next line
                notes.append(line)
    return _nonblank(notes), _nonblank(rest)


def _nonblank(texts: list[str]) -> tuple[str, ...]:
    return tuple(t for t in texts if t.strip())
