"""Per-session KV prompt caches, kept in an LRU bounded by bytes.

A request checks its session's entry out (so two concurrent requests of one session never share
a mutable cache), reuses the longest common token prefix, and checks the cache back in with the
tokens it now holds (prompt + generated). Only the MLX worker thread touches these caches.

A key without an entry (a session's first turn, or after eviction) starts from a copy of the
longest prefix another entry of its group holds, when that is at least SHARED_MIN tokens: a
user's sessions with one persona open with the same persona and pinned facts (Pippa's: ~600
tokens), prefilled once instead of at every new conversation. Keys are "group/name" (a user's
sessions: "user/session"); keys of different groups never share, so that the time to a first
token cannot tell one user what another's prompt starts with. A key without "/" shares nothing
but the public prefix: the tokens the chat template puts before any request's own words
(SmolLM2's default system message and the user turn's opening, 24 tokens), whose KV the first
prompt that holds them leaves for every later key. The same for every request, it tells no one
anything about anyone's prompt; it is ~40% of a short stateless prompt.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
from mlx_lm.models.cache import KVCache, can_trim_prompt_cache, trim_prompt_cache  # noqa: E402

log = logging.getLogger(__name__)

KVCacheList = list[Any]

# The shortest prefix worth copying from another session's cache (the chat template's header
# alone is ~10 tokens; a persona is hundreds)
SHARED_MIN = 32


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def cache_nbytes(cache: KVCacheList) -> int:
    return sum(c.nbytes for c in cache)


@dataclass
class Entry:
    tokens: list[int]
    cache: KVCacheList
    nbytes: int


class PromptCacheStore:
    def __init__(
        self,
        max_bytes: int,
        make_cache: Callable[[], KVCacheList],
        public: Sequence[int] = (),
    ) -> None:
        self.max_bytes = max_bytes
        self._make = make_cache
        self._entries: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self._nbytes = 0
        self.public = list(public)
        self._public: KVCacheList | None = None  # the KV of `public`, once a prompt held it

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def checkout(self, key: str | None, tokens: Sequence[int]) -> tuple[KVCacheList, int]:
        """A cache for `tokens` and how many of their first tokens it already holds.

        At least one token is always left to prefill, so the caller gets logits.
        """
        if not tokens:
            raise ValueError("cannot check out a prompt cache for an empty prompt")
        if key is None:  # a one-off request: nothing shared, nothing kept
            return self._make(), 0
        entry = self._pop(key)
        if entry is None:
            return self._shared(key, tokens)
        reuse = min(common_prefix(entry.tokens, tokens), len(tokens) - 1)
        excess = len(entry.tokens) - reuse
        if excess and not can_trim_prompt_cache(entry.cache):
            return self._make(), 0
        if excess:
            trim_prompt_cache(entry.cache, excess)
        if reuse == 0:
            return self._make(), 0
        return entry.cache, reuse

    def _shared(self, key: str, tokens: Sequence[int]) -> tuple[KVCacheList, int]:
        """A new cache holding a copy of the longest prefix of `tokens` that an entry of `key`'s
        group holds (at least SHARED_MIN tokens of it) or the public prefix's cache holds."""
        cache = self._make()
        if not _plain(cache):
            return cache, 0
        source, n = self._group_prefix(key, tokens)
        public = min(common_prefix(self.public, tokens), len(tokens) - 1)
        if self._public is not None and public > n:
            source, n = self._public, public
        if source is None or n == 0:
            return cache, 0
        _copy_prefix(source, cache, n)
        return cache, n

    def _group_prefix(self, key: str, tokens: Sequence[int]) -> tuple[KVCacheList | None, int]:
        group = _group(key)
        if group is None:
            return None, 0
        head = list(tokens[:SHARED_MIN])
        best, n = None, 0
        for other, entry in self._entries.items():
            if _group(other) == group and entry.tokens[:SHARED_MIN] == head:
                m = common_prefix(entry.tokens, tokens)
                if m > n:
                    best, n = entry, m
        n = min(n, len(tokens) - 1)
        if best is None or n < SHARED_MIN or not _plain(best.cache):
            return None, 0
        return best.cache, n

    def _keep_public(self, tokens: Sequence[int], cache: KVCacheList) -> None:
        n = len(self.public)
        if self._public is not None or not n or list(tokens[:n]) != self.public:
            return
        kept = self._make()
        if _plain(cache) and _plain(kept):
            _copy_prefix(cache, kept, n)
            self._public = kept

    def checkin(self, key: str | None, tokens: Sequence[int], cache: KVCacheList) -> None:
        """Store `cache`, which holds exactly `tokens`, as `key`'s entry; evict LRU over budget."""
        self._keep_public(tokens, cache)
        if key is None or not tokens:
            return
        self._pop(key)
        entry = Entry(list(tokens), cache, cache_nbytes(cache))
        if entry.nbytes > self.max_bytes:
            log.debug("prompt cache for %s (%d bytes) exceeds the budget", key, entry.nbytes)
            return
        self._entries[key] = entry
        self._nbytes += entry.nbytes
        while self._nbytes > self.max_bytes:
            old_key, old = self._entries.popitem(last=False)
            self._nbytes -= old.nbytes
            log.debug("evicted prompt cache %s (%d bytes)", old_key, old.nbytes)

    def tokens(self, key: str) -> list[int] | None:
        """What `key`'s entry holds; None when it has none in store."""
        entry = self._entries.get(key)
        return None if entry is None else list(entry.tokens)

    def holds(self, key: str, tokens: Sequence[int] | None) -> bool:
        """Does `key`'s entry hold exactly `tokens` (None: is there no entry)? A background
        warm-up stops when a turn has taken or changed the cache meanwhile."""
        entry = self._entries.get(key)
        if entry is None or tokens is None:
            return entry is None and tokens is None
        return entry.tokens == list(tokens)

    def discard(self, key: str) -> None:
        self._pop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._nbytes = 0
        self._public = None

    def _pop(self, key: str) -> Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._nbytes -= entry.nbytes
        return entry


def _group(key: str) -> str | None:
    return key.rpartition("/")[0] or None


def _copy_prefix(source: KVCacheList, cache: KVCacheList, n: int) -> None:
    """Fill the empty `cache` with a copy of the first `n` tokens `source` holds."""
    for mine, theirs in zip(cache, source, strict=True):
        # a copy, evaluated now: the source's buffers are written in place later (cpu_decode),
        # and a lazy slice of them would read what was written there
        mine.keys = mx.array(theirs.keys[..., :n, :])
        mine.values = mx.array(theirs.values[..., :n, :])
        mine.offset = n
    mx.eval([c.state for c in cache])


def _plain(cache: KVCacheList) -> bool:
    """Plain KVCache layers only: the ones whose prefix is a slice of their keys and values."""
    return all(type(c) is KVCache for c in cache)
