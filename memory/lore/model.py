"""A lorebook (World Info) as the Character Card V3 spec's `character_book` describes it.

The book is kept verbatim where it is stored (a persona's `character_book`, an uploaded book):
`LoreBook.of(data)` reads it into these models for the scanner, so fields we do not use, the
`extensions` of both levels included, round-trip untouched.

Where the V3 spec and SillyTavern (ST) disagree, which one we follow and why:
- Selective logic: V3 has only `selective` + `secondary_keys` (AND ANY). ST keeps its logic in
  `extensions.selectiveLogic` (0 AND ANY, 1 NOT ALL, 2 NOT ANY, 3 AND ALL) and we read it there:
  ST is where these books are written, and an absent value means AND ANY in both.
- Regex keys: V3 `use_regex` makes every key a pattern; ST reads a key in the `/pattern/flags`
  form as a regex whatever the flag. We do both, so either kind of book means what it meant.
- Case sensitivity: V3 `case_sensitive`, else ST `extensions.case_sensitive`; default off.
- Whole words: ST `extensions.match_whole_words` (its global default is off). Our default is
  on, because substrings are what fires "AI" inside "ain't" (ST #386); an entry that says
  `false` explicitly gets substring matching.
- Budget: V3 `priority` decides what a full budget drops (lower first), as the spec says; ST
  drops by its `order` (= `insertion_order`), which we use to break ties (lower first, as ST).
- Recursion: V3 `recursive_scanning` on the book (absent: off; the book says what it wants);
  ST's `exclude_recursion`, `prevent_recursion`, `delay_until_recursion` per entry are read
  from `extensions`.
- Scan depth: the book's `scan_depth` (absent: ST's default 2), ST's `extensions.scan_depth`
  per entry overrides it.
- Timed effects: ST's `extensions.sticky`, `cooldown`, `delay`, counted in messages as ST does
  (a turn is two: the user's and the reply); memory/lore/timed.py.
- Not supported (read and kept, never acted on): ST `probability` (a random draw would make the
  dry run and the turn disagree), inclusion groups, `position`/`depth` (every entry goes in the
  one lore part: memory/strategies/_lore.py says why), V3 `@@` decorators.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from memory.lore.errors import LoreError
from memory.lore.keys import check_entry

# Limits on a book: a book is scanned every turn, and a user uploads it
MAX_ENTRIES = 2_000
MAX_CONTENT_CHARS = 8_000
MAX_KEY_CHARS = 200
MAX_KEYS = 64  # primary or secondary keys of one entry
MAX_NAME_CHARS = 200
DEFAULT_SCAN_DEPTH = 2  # ST's default
MAX_SCAN_DEPTH = 100
MAX_RECURSION = 3  # recursion steps after the first scan


class SelectiveLogic(IntEnum):
    """ST's numbering (world_info_logic), which its books carry in extensions.selectiveLogic."""

    AND_ANY = 0
    NOT_ALL = 1
    NOT_ANY = 2
    AND_ALL = 3


class LoreEntry(BaseModel):
    """One `character_book.entries[]` item (V3 names; unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")

    keys: list[str] = Field(default_factory=list, max_length=MAX_KEYS)
    content: str = Field(default="", max_length=MAX_CONTENT_CHARS)
    extensions: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    insertion_order: int = 100
    case_sensitive: bool | None = None
    use_regex: bool = False
    constant: bool = False
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    priority: int | None = None
    id: int | str | None = None
    comment: str | None = None
    selective: bool = False
    secondary_keys: list[str] = Field(default_factory=list, max_length=MAX_KEYS)
    position: str | None = None

    def ext(self, name: str, default: Any = None) -> Any:
        value = self.extensions.get(name)
        return default if value is None else value

    @property
    def logic(self) -> SelectiveLogic:
        try:
            return SelectiveLogic(int(self.ext("selectiveLogic", 0)))
        except (TypeError, ValueError):
            return SelectiveLogic.AND_ANY

    @property
    def is_case_sensitive(self) -> bool:
        if self.case_sensitive is not None:
            return self.case_sensitive
        return bool(self.ext("case_sensitive", False))

    @property
    def whole_words(self) -> bool:
        return self.ext("match_whole_words", True) is not False

    def _count(self, name: str) -> int:
        try:
            return max(0, int(self.ext(name, 0)))
        except (TypeError, ValueError):
            return 0

    @property
    def sticky(self) -> int:
        return self._count("sticky")

    @property
    def cooldown(self) -> int:
        return self._count("cooldown")

    @property
    def delay(self) -> int:
        return self._count("delay")

    @property
    def scan_depth(self) -> int | None:
        depth = self.extensions.get("scan_depth")
        if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 0:
            return min(depth, MAX_SCAN_DEPTH)
        return None

    @property
    def rank(self) -> tuple[int, int]:
        """Budget rank: higher is kept first (priority, then insertion_order)."""
        return (self.priority if self.priority is not None else 0, self.insertion_order)

    @property
    def label(self) -> str:
        return self.name or self.comment or (self.keys[0] if self.keys else "")


class LoreBook(BaseModel):
    """A `character_book` object (V3 names; unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    description: str | None = None
    scan_depth: int | None = Field(default=None, ge=0)
    token_budget: int | None = Field(default=None, ge=0)
    recursive_scanning: bool = False
    extensions: dict[str, Any] = Field(default_factory=dict)
    entries: list[LoreEntry] = Field(default_factory=list)
    # the scanner's compiled form of the entries (memory/lore/scan.py), built on first use:
    # a book is scanned every turn, its keys are compiled once
    _compiled: Any = PrivateAttr(default=None)

    @property
    def depth(self) -> int:
        depth = DEFAULT_SCAN_DEPTH if self.scan_depth is None else self.scan_depth
        return min(depth, MAX_SCAN_DEPTH)

    @classmethod
    def of(cls, data: Any) -> LoreBook:
        """Validate a stored or uploaded `character_book`; LoreError naming the field."""
        if not isinstance(data, dict):
            raise LoreError("a lorebook must be a JSON object with `entries`", field=None)
        entries = data.get("entries", [])
        if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
            raise LoreError(
                f"{len(entries)} entries; a book holds at most {MAX_ENTRIES}", field="entries"
            )
        try:
            book = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise LoreError(f"{where}: {err['msg']}", field=where or None) from None
        for i, entry in enumerate(book.entries):
            for kind in ("keys", "secondary_keys"):
                for j, key in enumerate(getattr(entry, kind)):
                    if len(key) > MAX_KEY_CHARS:
                        raise LoreError(
                            f"entries.{i}.{kind}.{j}: a key is at most {MAX_KEY_CHARS} "
                            f"characters, got {len(key)}",
                            field=f"entries.{i}.{kind}.{j}",
                        )
        for i, entry in enumerate(book.entries):
            check_entry(entry, f"entries.{i}")  # a bad regex is a bad book
        return book

    def entry_ids(self) -> list[str]:
        """Each entry's id as a string: its own `id`, else its position (stable until edited)."""
        return [str(e.id) if e.id is not None else str(i) for i, e in enumerate(self.entries)]


class ActiveBook(BaseModel):
    """A book in force for a session, with the id its firings are reported under."""

    id: str  # "persona:<persona id>" or an uploaded book's id
    book: LoreBook
