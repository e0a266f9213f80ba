"""Lore keys: how a key is read (a word, a phrase, a substring, a regex) and where in the
scanned messages it fires.

Messages are indexed once per scan (`ScanIndex`): every word of every message, with the forms
it may fire (an English plural's singular, a Korean word without its particles: korean.py),
maps to the newest message holding it. A one-word key is then a dictionary lookup, not a regex
run per message: 1,000 entries over 10 messages cost a few thousand lookups (benchmarks/lore.py).

- Latin keys match whole words (tokens of letters and digits): "AI" never fires in "ain't"
  (ST #386), "dragon" fires in "dragon's" and "dragons".
- Hangul keys match at a word start followed by the word end or noun endings (korean.py).
- Han and kana keys match as substrings: those scripts put no spaces between words, so whole
  words do not exist for them (ST #1685: "match whole words" never fires in Japanese/Chinese).
- A key in the `/pattern/flags` form (ST), or any key of a `use_regex` entry (V3), is a
  regular expression (JavaScript flags i, m, s; g, y and u change nothing here). It runs on the
  `regex` module, not `re`: a user's pattern runs inside `assemble`, on the event loop, and
  `regex` bounds each search with a timeout (and defuses many catastrophic patterns, such as
  (x+x+)+y, that `re` would run for minutes); it also reads JavaScript's `(?<name>...)`. A
  search that times out counts as no match and is logged.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

import regex

from memory.lore.errors import LoreError
from memory.lore.korean import is_hangul, key_forms

_HANGUL = "\uac00-\ud7a3"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\u3005"
# words: a Hangul run, a Han/kana run, or a run of other letters and digits (so "Netflix에서"
# is two words and the Latin key "Netflix" fires in it)
_TOKEN = re.compile(rf"[{_HANGUL}]+|[{_CJK}]+|[^\W_{_HANGUL}{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_REGEX_KEY = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "g": 0, "y": 0, "u": 0}
REGEX_TIMEOUT = 0.02  # seconds per search of one message
log = logging.getLogger(__name__)

KeyKind = Literal["word", "phrase", "substring", "regex"]


class KeyedEntry(Protocol):
    """What compiling an entry's keys reads of it (memory.lore.model.LoreEntry)."""

    @property
    def keys(self) -> list[str]: ...
    @property
    def secondary_keys(self) -> list[str]: ...
    @property
    def use_regex(self) -> bool: ...
    @property
    def is_case_sensitive(self) -> bool: ...
    @property
    def whole_words(self) -> bool: ...


def latin_forms(word: str) -> tuple[str, ...]:
    """The word and its singular when it looks like an English plural (dragons -> dragon,
    witches -> witch); short words and -ss words are left alone (AIs is not AI's business)."""
    forms = [word]
    if len(word) >= 4 and word[-1] in "sS" and word[-2] not in "sS'":
        forms.append(word[:-1])
        if len(word) >= 5 and word[-2] in "eE" and word[-3] in "sSxXzZhH":
            forms.append(word[:-2])
    return tuple(forms)


def word_forms(word: str) -> tuple[str, ...]:
    return key_forms(word) if is_hangul(word) else latin_forms(word)


@dataclass
class _Text:
    """One scanned message, in one case (as written, or lower-cased)."""

    text: str
    tokens: list[str]
    forms: list[tuple[str, ...]]
    starts: dict[str, list[int]]  # token -> its positions


def _text(text: str) -> _Text:
    tokens = _TOKEN.findall(text)
    starts: dict[str, list[int]] = {}
    for i, t in enumerate(tokens):
        starts.setdefault(t, []).append(i)
    return _Text(text, tokens, [word_forms(t) for t in tokens], starts)


@dataclass
class ScanIndex:
    """The scanned texts, newest first, indexed for key lookups (built lazily per case)."""

    texts: list[str]
    _cased: dict[bool, tuple[list[_Text], dict[str, int]]] = field(default_factory=dict)

    def view(self, case_sensitive: bool) -> tuple[list[_Text], dict[str, int]]:
        """Per-text indexes and form -> newest text holding it."""
        if case_sensitive not in self._cased:
            texts = [_text(t if case_sensitive else t.lower()) for t in self.texts]
            newest: dict[str, int] = {}
            for i, t in enumerate(texts):
                for forms in t.forms:
                    for f in forms:
                        newest.setdefault(f, i)
            self._cased[case_sensitive] = (texts, newest)
        return self._cased[case_sensitive]


@dataclass(frozen=True)
class Key:
    """A compiled key: `find` gives the newest text (index < depth) where it fires."""

    source: str
    kind: KeyKind
    case_sensitive: bool
    words: tuple[str, ...] = ()
    pattern: regex.Pattern[str] | None = None

    def find(self, index: ScanIndex, depth: int) -> int | None:
        if self.kind == "regex":
            assert self.pattern is not None
            for i, text in enumerate(index.texts[:depth]):
                try:
                    if self.pattern.search(text, timeout=REGEX_TIMEOUT):
                        return i
                except TimeoutError:
                    log.warning(
                        "lore key %r timed out on a message: counted as no match", self.source
                    )
            return None
        texts, newest = index.view(self.case_sensitive)
        if self.kind == "word":
            pos = newest.get(self.words[0])
            return pos if pos is not None and pos < depth else None
        if self.kind == "substring":
            needle = self.words[0]
            return next((i for i, t in enumerate(texts[:depth]) if needle in t.text), None)
        return self._phrase(texts, newest, depth)

    def _phrase(self, texts: list[_Text], newest: dict[str, int], depth: int) -> int | None:
        first, last, n = self.words[0], self.words[-1], len(self.words)
        start = newest.get(first)
        if start is None or newest.get(last) is None:
            return None  # a word of it is nowhere: no need to look at positions
        for i in range(start, min(depth, len(texts))):
            t = texts[i]
            for p in t.starts.get(first, ()):
                if (
                    p + n <= len(t.tokens)
                    and t.tokens[p : p + n - 1] == list(self.words[:-1])
                    and last in t.forms[p + n - 1]
                ):
                    return i
        return None


def _regex(pattern: str, flags: str, where: str) -> regex.Pattern[str]:
    bits = 0
    for f in flags:
        if f not in _FLAGS:
            raise LoreError(f"{where}: unknown regex flag {f!r} in /{pattern}/{flags}", where)
        bits |= _FLAGS[f]
    try:
        return regex.compile(pattern, bits)
    except regex.error as exc:
        raise LoreError(f"{where}: bad regex /{pattern}/{flags}: {exc}", where) from None


@functools.lru_cache(maxsize=65_536)
def compile_key(
    source: str, case_sensitive: bool, whole_words: bool, use_regex: bool, where: str = "key"
) -> Key | None:
    """The key as the scanner uses it; None for a blank key. LoreError for a bad regex."""
    key = source.strip()
    if not key:
        return None
    m = _REGEX_KEY.match(key)
    if m:  # ST: the /pattern/flags form is a regex, case as its flags say
        return Key(source, "regex", True, pattern=_regex(m.group(1), m.group(2), where))
    if use_regex:  # V3: every key a pattern, case as the entry says
        flags = "" if case_sensitive else "i"
        return Key(source, "regex", case_sensitive, pattern=_regex(key, flags, where))
    norm = key if case_sensitive else key.lower()
    words = tuple(_TOKEN.findall(norm))
    if not words or not whole_words or _CJK_CHAR.search(norm):
        return Key(source, "substring", case_sensitive, words=(norm,))
    return Key(source, "word" if len(words) == 1 else "phrase", case_sensitive, words=words)


def entry_keys(entry: KeyedEntry, secondary: bool = False, where: str = "entry") -> list[Key]:
    keys = entry.secondary_keys if secondary else entry.keys
    kind = "secondary_keys" if secondary else "keys"
    out = []
    for j, k in enumerate(keys):
        key = compile_key(
            k, entry.is_case_sensitive, entry.whole_words, entry.use_regex, f"{where}.{kind}.{j}"
        )
        if key is not None:
            out.append(key)
    return out


def check_entry(entry: KeyedEntry, where: str) -> None:
    """LoreError naming the key when one of the entry's keys is a bad regex."""
    entry_keys(entry, False, where)
    entry_keys(entry, True, where)
