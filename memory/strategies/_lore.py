"""The lore part: the lorebook entries that fire for this message, within their budgets.

Where it goes (PART_ORDER): after the relationship, before kept turns, the summary and the
recent buffer. An entry stays active while its key is within the scan depth (a few messages)
or its sticky window, so the same set usually holds for several turns and the KV prefix through
the lore part is reused; the parts after it change more often anyway. Put nearer the end it
would be re-prefilled every turn, active set unchanged or not.

How much it gets: after the persona, pinned facts, the new message and the relationship, and
before the summary, the recent buffer and recall: it is what the author wrote for exactly
what is being said now, and nothing else brings it back (the recent buffer's turns go on to
the summary and to recall). It takes at most `lore_tokens` (a session param, default 512) and
at most a third of the room left, so the recent buffer always keeps most of the window. What
does not fit is dropped lowest priority first and stated (part.dropped, Context.notes).
"""

from __future__ import annotations

from collections.abc import Sequence

from memory.lore.budget import fit
from memory.lore.scan import Hit, scan
from memory.strategies._count import count_message
from memory.types import LLM, AssembleRequest, ContextMessage, ContextPart, StoredMessage

LORE_HEADER = "World info (what is true in this story; use it when it matters):\n"
LORE_SHARE = 3  # the lore part takes at most 1/3 of the room left
DEFAULT_LORE_TOKENS = 512
MAX_LORE_TOKENS = 8192


def fill(text: str, req: AssembleRequest) -> str:
    """{{char}} and {{user}}, as everywhere else a persona's text goes."""
    return text.replace("{{char}}", req.assistant_name).replace("{{user}}", req.user_name)


def lore_part(
    llm: LLM, req: AssembleRequest, history: Sequence[StoredMessage], limit: int
) -> ContextPart | None:
    """The lore part within `limit` tokens; None when nothing fired. A part with no messages
    when everything that fired was dropped, so the Context still says what and why."""
    if not req.lore:
        return None
    hits = scan(req.lore, history, req.new_message, req.state.lore_timers, len(req.history) + 1)
    if not hits:
        return None
    empty = count_message(llm, "system", "")
    header = count_message(llm, "system", LORE_HEADER) - empty
    texts = {id(h): fill(h.entry.content.strip(), req) for h in hits}

    def cost(h: Hit) -> int:  # its line and a line break; the exact count comes below
        return count_message(llm, "system", "\n" + texts[id(h)]) - empty + 1

    room = max(0, limit - empty - header)
    fitted = fit(hits, req.lore, cost, room, limit)
    kept, dropped = fitted.kept, list(fitted.dropped)
    while True:
        part = _render(llm, kept, texts)
        if part.tokens <= limit or not kept:
            break
        worst = min(kept, key=lambda h: (h.entry.rank, -h.entry_index))  # BPE merges: recount
        kept.remove(worst)
        dropped.append((worst, f"over the lore part's room of {limit} tokens"))
    part.dropped = [
        h.firing.model_copy(update={"why": f"{h.firing.why}; dropped: {reason}"})
        for h, reason in dropped
    ]
    return part


def _render(llm: LLM, kept: list[Hit], texts: dict[int, str]) -> ContextPart:
    messages = [
        ContextMessage(role="system", content=(LORE_HEADER if i == 0 else "") + texts[id(h)])
        for i, h in enumerate(kept)
    ]
    fired = [
        h.firing.model_copy(update={"tokens": count_message(llm, "system", texts[id(h)])})
        for h in kept
    ]
    part = ContextPart(kind="lore", tokens=0, messages=messages, fired=fired)
    if messages:
        part.tokens = count_message(llm, "system", part.to_messages()[0]["content"])
    return part


def lore_notes(part: ContextPart | None) -> list[str]:
    """What the inspector's notes say of dropped entries."""
    if part is None or not part.dropped:
        return []
    names = ", ".join(f"{f.name or f.entry!r} ({f.book})" for f in part.dropped)
    return [f"lore: {len(part.dropped)} entries fired but did not fit: {names}"]
