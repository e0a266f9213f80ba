"""Which lore entries fire for a turn, and why: keys in the scanned messages, secondary keys
under the entry's selective logic, constants, sticky windows, then recursion through the
content of what fired. Pure: reads the books, the messages and the timers, changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memory.lore.keys import Key, ScanIndex, entry_keys
from memory.lore.model import MAX_RECURSION, ActiveBook, LoreEntry, SelectiveLogic
from memory.lore.timed import cooling, delayed, sticky_active, timer_key, windows
from memory.types import LoreFiring, LoreTimer, StoredMessage


@dataclass(frozen=True)
class Hit:
    """A fired entry: its book (position in the active list), the entry and why."""

    book_index: int
    entry_index: int
    entry: LoreEntry
    firing: LoreFiring


@dataclass(frozen=True)
class _Candidate:
    book_index: int
    entry_index: int
    book_id: str
    entry_id: str
    entry: LoreEntry
    depth: int
    recursive: bool  # its book scans recursively (and the entry allows it)


def _where(message_id: int | None) -> str:
    return "the new message" if message_id is None else f"message #{message_id}"


def _secondary_ok(
    entry: LoreEntry, keys: Sequence[Key], index: ScanIndex, depth: int
) -> tuple[bool, list[str]]:
    """Whether the entry's secondary keys meet its logic, and the ones found."""
    if not entry.selective or not keys:
        return True, []
    found = [k.source for k in keys if k.find(index, depth) is not None]
    logic = entry.logic
    if logic is SelectiveLogic.AND_ANY:
        return bool(found), found
    if logic is SelectiveLogic.AND_ALL:
        return len(found) == len(keys), found
    if logic is SelectiveLogic.NOT_ANY:
        return not found, found
    return len(found) < len(keys), found  # NOT_ALL


def _match(c: _Candidate, index: ScanIndex, depth: int) -> tuple[int, str, list[str]] | None:
    """(text index, key, secondary keys found) of the first primary key that fires (in the
    newest text holding it) when the secondary logic agrees; None otherwise."""
    where = f"{c.book_id}.entries.{c.entry_index}"
    for key in entry_keys(c.entry, False, where):
        i = key.find(index, depth)
        if i is None:
            continue
        ok, found = _secondary_ok(c.entry, entry_keys(c.entry, True, where), index, depth)
        return (i, key.source, found) if ok else None
    return None


def _firing(c: _Candidate, now: int, **fields: object) -> LoreFiring:
    sticky, cooldown = windows(c.entry, now)
    return LoreFiring(
        book=c.book_id,
        entry=c.entry_id,
        name=c.entry.label,
        at=now,
        sticky_until=sticky if fields.get("reason") != "sticky" else None,
        cooldown_until=cooldown if fields.get("reason") != "sticky" else None,
        **fields,  # type: ignore[arg-type]
    )


def candidates(books: Sequence[ActiveBook]) -> list[_Candidate]:
    out = []
    for b, active in enumerate(books):
        book = active.book
        for e, (entry, eid) in enumerate(zip(book.entries, book.entry_ids(), strict=True)):
            if not entry.enabled or not entry.content.strip():
                continue
            depth = entry.scan_depth if entry.scan_depth is not None else book.depth
            recursive = book.recursive_scanning and not entry.ext("exclude_recursion", False)
            out.append(_Candidate(b, e, active.id, eid, entry, depth, recursive))
    return out


def scan(
    books: Sequence[ActiveBook],
    history: Sequence[StoredMessage],
    new_message: str,
    timers: dict[str, LoreTimer] | None = None,
    now: int | None = None,
) -> list[Hit]:
    """The entries that fire when `new_message` follows `history` (oldest first, forgotten
    messages already out), in book order then entry order. `now` is the new message's number
    (default: len(history) + 1)."""
    timers = timers or {}
    now = len(history) + 1 if now is None else now
    cands = candidates(books)
    if not cands:
        return []
    depth = max(c.depth for c in cands)
    recent = list(history[len(history) - depth + 1 :]) if depth > 1 else []
    recent.reverse()  # newest first, after the new message
    ids: list[int | None] = [None, *(m.id for m in recent)] if depth else []
    index = ScanIndex([new_message, *(m.content for m in recent)] if depth else [])
    hits: list[Hit] = []
    waiting: list[_Candidate] = []
    for c in cands:
        timer = timers.get(timer_key(c.book_id, c.entry_id))
        if sticky_active(timer, now):
            why = f"sticky (fired earlier, active through message {timer.sticky_until})"  # type: ignore[union-attr]
            hits.append(
                Hit(c.book_index, c.entry_index, c.entry, _firing(c, now, reason="sticky", why=why))
            )
            continue
        if delayed(c.entry, now) or cooling(timer, now):
            continue
        if c.entry.constant:
            hits.append(
                Hit(
                    c.book_index,
                    c.entry_index,
                    c.entry,
                    _firing(c, now, reason="constant", why="constant"),
                )
            )
            continue
        found = None if c.entry.ext("delay_until_recursion", False) else _match(c, index, c.depth)
        if found is None:
            waiting.append(c)
            continue
        i, key, secondary = found
        why = f"key {key!r} in {_where(ids[i])}"
        if secondary:
            why += f" (with {', '.join(repr(s) for s in secondary)})"
        firing = _firing(
            c, now, reason="key", key=key, message_id=ids[i], secondary=secondary, why=why
        )
        hits.append(Hit(c.book_index, c.entry_index, c.entry, firing))
    hits.extend(_recurse(hits, [c for c in waiting if c.recursive], now))
    return sorted(hits, key=lambda h: (h.book_index, h.entry_index))


def _recurse(fired: list[Hit], waiting: list[_Candidate], now: int) -> list[Hit]:
    """Entries whose keys are in the content of entries that fired, step by step, at most
    MAX_RECURSION steps (a chain of books quoting each other stops there)."""
    out: list[Hit] = []
    source = [h for h in fired if not h.entry.ext("prevent_recursion", False)]
    for _ in range(MAX_RECURSION):
        if not (source and waiting):
            break
        index = ScanIndex([h.entry.content for h in source])
        new: list[Hit] = []
        for c in list(waiting):
            found = _match(c, index, len(source))
            if found is None:
                continue
            i, key, secondary = found
            via = f"{source[i].firing.book}:{source[i].firing.entry}"
            why = (
                f"key {key!r} in the content of entry {source[i].firing.name or via!r} (recursion)"
            )
            firing = _firing(
                c, now, reason="recursion", key=key, via=via, secondary=secondary, why=why
            )
            new.append(Hit(c.book_index, c.entry_index, c.entry, firing))
            waiting.remove(c)
        out.extend(new)
        source = [h for h in new if not h.entry.ext("prevent_recursion", False)]
    return out
