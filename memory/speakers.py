"""Who said a stored turn, for text the model reads as notes rather than as a transcript.

Imported conversations keep their speakers' names in the text ("Caroline: I went ..."): such a
label names the speaker better than the role does. Only capitalised words count as a name, so
that "note: ..." or a lowercase "user: ..." is left as the text it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SPEAKER_LABEL = re.compile(r"([A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2}): (?=\S)")


def split_label(content: str, names: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """(the speaker named at the start of `content`, the rest); (None, content) without one.
    `names` are labels that count whatever their script (a Korean user name: "아빠: ...")."""
    label = SPEAKER_LABEL.match(content)
    if label is None:
        for name in names:
            if name and content.startswith(f"{name}: "):
                return name, content[len(name) + 2 :]
        return None, content
    return label.group(1), content[label.end() :]


def day_line(date: str) -> str:
    """The line a day's recalled notes sit under: "On 8 May 2023:". Said once per run of notes
    of one day instead of on every note: "2 March 2024" is ~7 tokens, a fifth of a Korean turn,
    and Pippa's recall has ~190 tokens at 1,024 (issue 11)."""
    return f"On {date}:"


def note_prefix(speaker: str) -> str:
    """How a recalled turn opens under its day's line: "- Caroline said: "."""
    return f"- {speaker} said: "


DAY_LINE = re.compile(r"^On (\d{1,2} [A-Z][a-z]+ \d{4}):$", re.MULTILINE)
NOTE_OPENING = re.compile(r"^- (\S[^\n]{0,40}?) said: ", re.MULTILINE)
_LINE_LABEL = re.compile(r"^" + SPEAKER_LABEL.pattern, re.MULTILINE)


def speakers_in(texts: Iterable[str], names: Iterable[str] = ()) -> tuple[str, ...]:
    """Who speaks in a Context: the speakers its recalled notes name, the labels its turns open
    with ("Caroline: ..."), and `names` (the persona's own). A reply that opens with one of
    them, or starts a new line with one, is the model continuing the transcript (issue 12)."""
    found = [n for n in names if n]
    for text in texts:
        day = DAY_LINE.search(text)
        if day is not None:  # only notes under a day's line: "- I said: ..." elsewhere is text
            found += NOTE_OPENING.findall(text, day.start())
        found += (m.group(1) for m in _LINE_LABEL.finditer(text))
    return tuple(dict.fromkeys(found))


def without_names(query: str, names: Iterable[str]) -> str:
    """A recall query without the names of the two who talk ("아빠 제일 친한 친구가 누구였더라?"
    -> "제일 친한 친구가 누구였더라?"). In a chat of two, their names (and the particles Korean
    attaches to them: 아빠가, Pippa야) are in half the turns as a vocative, so a query that holds
    one matches every "푹 쉬어요 아빠 😴" before the turn that answers it: without them,
    benchmarks/korean_facts.py's paraphrases at top 5 went 0.44 -> 0.56. A query that is
    nothing but a name is kept as it is."""
    out = query
    for name in names:
        if name:
            out = re.sub(rf"(?<!\w){re.escape(name)}[\uac00-\ud7a3]{{0,3}}(?!\w)", " ", out)
    out = " ".join(out.split()).lstrip(",.!~ ")
    return out if any(ch.isalnum() for ch in out) else query
