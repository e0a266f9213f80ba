"""Who said a stored turn, for text the model reads as notes rather than as a transcript.

Imported conversations keep their speakers' names in the text ("Caroline: I went ..."): such a
label names the speaker better than the role does. Only capitalised words count as a name, so
that "note: ..." or a lowercase "user: ..." is left as the text it is.
"""

from __future__ import annotations

import re

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
