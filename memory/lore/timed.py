"""Timed effects (SillyTavern's sticky, cooldown and delay), counted in messages as ST does.

A turn is two messages (the user's and the reply), and entries are scanned once per turn, at
the user's message numbered `now` (the chat's length with it). An entry that fires at `now`:
- sticky N: stays active through message now + N, whether its keys are still there or not;
- cooldown N: then cannot fire again through N more messages (from its sticky end, or from
  `now` without one);
- delay N: cannot fire at all before the chat has N messages.
`assemble` is pure, so the scan only reads the windows (MemoryState.lore_timers) and writes
the new ones onto its firings; `after_turn`, called by observe with the reply's Context, keeps
them. A dry run therefore never starts a timer.
"""

from __future__ import annotations

from typing import TypeGuard

from memory.lore.model import LoreEntry
from memory.types import Context, LoreFiring, LoreTimer


def sticky_active(timer: LoreTimer | None, now: int) -> TypeGuard[LoreTimer]:
    return timer is not None and timer.sticky_until is not None and now <= timer.sticky_until


def cooling(timer: LoreTimer | None, now: int) -> bool:
    return timer is not None and timer.cooldown_until is not None and now <= timer.cooldown_until


def delayed(entry: LoreEntry, now: int) -> bool:
    return now < entry.delay


def windows(entry: LoreEntry, now: int) -> tuple[int | None, int | None]:
    """(sticky_until, cooldown_until) of an entry that fires afresh at message `now`."""
    sticky = now + entry.sticky if entry.sticky else None
    cooldown = (sticky or now) + entry.cooldown if entry.cooldown else None
    return sticky, cooldown


def timer_key(book: str, entry: str) -> str:
    return f"{book}:{entry}"


def after_turn(timers: dict[str, LoreTimer], context: Context | None) -> dict[str, LoreTimer]:
    """The windows after a reply generated from `context`: entries that fired afresh (not by
    being sticky) start theirs; windows that ended are dropped."""
    if context is None:
        return timers
    fired: list[LoreFiring] = [f for p in context.parts if p.kind == "lore" for f in p.fired]
    if not fired:
        return timers
    now = max(f.at for f in fired)
    out = {
        k: t for k, t in timers.items() if max(t.sticky_until or 0, t.cooldown_until or 0) >= now
    }
    for f in fired:
        if f.reason != "sticky" and (f.sticky_until or f.cooldown_until):
            out[timer_key(f.book, f.entry)] = LoreTimer(
                sticky_until=f.sticky_until, cooldown_until=f.cooldown_until
            )
    return out
