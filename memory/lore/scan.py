"""Which lore entries fire for a turn, and why: keys in the scanned messages, secondary keys
under the entry's selective logic, constants, sticky windows, then recursion through the
content of what fired. Pure: reads the books, the messages and the timers, changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Required, TypedDict, Unpack

from memory.lore.keys import Key, ScanIndex, entry_keys
from memory.lore.model import MAX_RECURSION, ActiveBook, LoreBook, LoreEntry, SelectiveLogic
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
class _Compiled:
    """An entry as the scanner uses it: keys compiled, flags read once per book."""

    entry_index: int
    entry_id: str
    entry: LoreEntry
    depth: int
    recursive: bool  # its book scans recursively (and the entry allows it)
    keys: tuple[Key, ...]
    secondary: tuple[Key, ...]
    timed: bool  # has a sticky, cooldown or delay
    after_recursion: bool  # delay_until_recursion
    prevents_recursion: bool


@dataclass(frozen=True)
class _Candidate:
    book_index: int
    book_id: str
    c: _Compiled

    @property
    def entry(self) -> LoreEntry:
        return self.c.entry

    @property
    def entry_id(self) -> str:
        return self.c.entry_id

    @property
    def entry_index(self) -> int:
        return self.c.entry_index


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
    for key in c.c.keys:
        i = key.find(index, depth)
        if i is None:
            continue
        ok, found = _secondary_ok(c.entry, c.c.secondary, index, depth)
        return (i, key.source, found) if ok else None
    return None


class _FiringFields(TypedDict, total=False):
    """What a scan says about a firing, beside what _firing fills in (LoreFiring's fields)."""

    reason: Required[Literal["key", "constant", "sticky", "recursion"]]
    why: str
    key: str | None
    message_id: int | None
    via: str | None
    secondary: list[str]


def _firing(c: _Candidate, now: int, **fields: Unpack[_FiringFields]) -> LoreFiring:
    sticky, cooldown = windows(c.entry, now)
    return LoreFiring(
        book=c.book_id,
        entry=c.entry_id,
        name=c.entry.label,
        at=now,
        sticky_until=sticky if fields.get("reason") != "sticky" else None,
        cooldown_until=cooldown if fields.get("reason") != "sticky" else None,
        **fields,
    )


@dataclass
class _BookScan:
    """A book compiled for scanning: its entries, and which entries a word of the scanned text
    can reach (by the first word of a key), so a scan looks up the text's few hundred words
    instead of trying every key of every entry."""

    entries: list[_Compiled]
    words: dict[bool, dict[str, list[int]]]  # case-sensitive? -> key word -> entries
    always: list[int]  # constant entries and those with a substring or regex key
    timed: list[int]  # entries with a sticky, cooldown or delay (their timers are read)

    def reach(self, index: ScanIndex) -> set[int]:
        """The entries that may fire on `index` (a superset; _match decides)."""
        out = set(self.always)
        for case, words in self.words.items():
            for form in index.view(case)[1]:
                hit = words.get(form)
                if hit:
                    out.update(hit)
        return out


def compiled(book: LoreBook) -> _BookScan:
    """The book compiled for scanning, cached on it (LoreBook.of made it from data that does
    not change under it): its enabled, non-empty entries, keys compiled once."""
    cached: _BookScan | None = book._compiled  # typed Any there: this module imports that one
    if cached is not None:
        return cached
    result = _BookScan([], {}, [], [])
    for e, (entry, eid) in enumerate(zip(book.entries, book.entry_ids(), strict=True)):
        if not entry.enabled or not entry.content.strip():
            continue
        where = f"entries.{e}"
        c = _Compiled(
            entry_index=e,
            entry_id=eid,
            entry=entry,
            depth=entry.scan_depth if entry.scan_depth is not None else book.depth,
            recursive=book.recursive_scanning and not entry.ext("exclude_recursion", False),
            keys=tuple(entry_keys(entry, False, where)),
            secondary=tuple(entry_keys(entry, True, where)),
            timed=bool(entry.sticky or entry.cooldown or entry.delay),
            after_recursion=bool(entry.ext("delay_until_recursion", False)),
            prevents_recursion=bool(entry.ext("prevent_recursion", False)),
        )
        n = len(result.entries)
        result.entries.append(c)
        if c.timed:
            result.timed.append(n)
        if entry.constant or any(k.kind in ("substring", "regex") for k in c.keys):
            result.always.append(n)
        for k in c.keys:
            if k.kind in ("word", "phrase"):
                result.words.setdefault(k.case_sensitive, {}).setdefault(k.words[0], []).append(n)
    book._compiled = result
    return result


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
    scans = [compiled(b.book) for b in books]
    depth = max((c.depth for s in scans for c in s.entries), default=0)
    if not any(s.entries for s in scans):
        return []
    recent = list(history[len(history) - depth + 1 :]) if depth > 1 else []
    recent.reverse()  # newest first, after the new message
    ids: list[int | None] = [None, *(m.id for m in recent)] if depth else []
    index = ScanIndex([new_message, *(m.content for m in recent)] if depth else [])
    hits: list[Hit] = []
    for b, (active, bs) in enumerate(zip(books, scans, strict=True)):
        for n in sorted(bs.reach(index).union(bs.timed)):
            c = _Candidate(b, active.id, bs.entries[n])
            hit = _first_pass(c, index, ids, timers, now)
            if hit is not None:
                hits.append(hit)
    hits.extend(_recurse(books, scans, hits, timers, now))
    return sorted(hits, key=lambda h: (h.book_index, h.entry_index))


def _first_pass(
    c: _Candidate,
    index: ScanIndex,
    ids: list[int | None],
    timers: dict[str, LoreTimer],
    now: int,
) -> Hit | None:
    timer = timers.get(timer_key(c.book_id, c.entry_id)) if timers else None
    if sticky_active(timer, now):
        why = f"sticky (fired earlier, active through message {timer.sticky_until})"
        return Hit(c.book_index, c.entry_index, c.entry, _firing(c, now, reason="sticky", why=why))
    if (c.c.timed and delayed(c.entry, now)) or cooling(timer, now):
        return None
    if c.entry.constant:
        firing = _firing(c, now, reason="constant", why="constant")
        return Hit(c.book_index, c.entry_index, c.entry, firing)
    found = None if c.c.after_recursion else _match(c, index, c.c.depth)
    if found is None:
        return None
    i, key, secondary = found
    why = f"key {key!r} in {_where(ids[i])}"
    if secondary:
        why += f" (with {', '.join(repr(s) for s in secondary)})"
    firing = _firing(c, now, reason="key", key=key, message_id=ids[i], secondary=secondary, why=why)
    return Hit(c.book_index, c.entry_index, c.entry, firing)


def _recurse(
    books: Sequence[ActiveBook],
    scans: Sequence[_BookScan],
    fired: list[Hit],
    timers: dict[str, LoreTimer],
    now: int,
) -> list[Hit]:
    """Entries of recursive books whose keys are in the content of entries that fired, step
    by step, at most MAX_RECURSION steps (books quoting each other in a ring stop there)."""
    out: list[Hit] = []
    done = {(h.book_index, h.entry_index) for h in fired}
    source = [h for h in fired if not h.entry.ext("prevent_recursion", False)]
    for _ in range(MAX_RECURSION):
        if not source:
            break
        index = ScanIndex([h.entry.content for h in source])
        new: list[Hit] = []
        for b, (active, bs) in enumerate(zip(books, scans, strict=True)):
            if not active.book.recursive_scanning:
                continue
            for n in sorted(bs.reach(index)):
                c = _Candidate(b, active.id, bs.entries[n])
                if (b, c.entry_index) in done or not c.c.recursive or c.entry.constant:
                    continue
                timer = timers.get(timer_key(c.book_id, c.entry_id)) if timers else None
                if (c.c.timed and delayed(c.entry, now)) or cooling(timer, now):
                    continue
                found = _match(c, index, len(source))
                if found is None:
                    continue
                i, key, secondary = found
                via = f"{source[i].firing.book}:{source[i].firing.entry}"
                name = source[i].firing.name or via
                why = f"key {key!r} in the content of entry {name!r} (recursion)"
                firing = _firing(
                    c, now, reason="recursion", key=key, via=via, secondary=secondary, why=why
                )
                new.append(Hit(b, c.entry_index, c.entry, firing))
                done.add((b, c.entry_index))
        out.extend(new)
        source = [h for h in new if not h.entry.ext("prevent_recursion", False)]
    return out
