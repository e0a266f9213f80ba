"""The per-session KV prompt cache store: prefix reuse, trimming, LRU eviction by bytes."""

from __future__ import annotations

from typing import Any

import pytest

from app.llm.prompt_cache import SHARED_MIN, PromptCacheStore, cache_nbytes, common_prefix
from app.llm.worker import MLXWorker

LAYERS = 2


def filled(n_tokens: int) -> list[Any]:
    """A real mlx-lm KV cache holding `n_tokens` positions (runs on the MLX thread)."""
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    cache = [KVCache() for _ in range(LAYERS)]
    for c in cache:
        kv = mx.zeros((1, 2, n_tokens, 8))
        c.update_and_fetch(kv, kv)
    mx.eval([c.state for c in cache])
    return cache


def make_store(max_bytes: int) -> PromptCacheStore:
    from mlx_lm.models.cache import KVCache

    return PromptCacheStore(max_bytes, lambda: [KVCache() for _ in range(LAYERS)])


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([5], [6]) == 0


def test_reuse_trims_to_the_common_prefix(mlx_worker: MLXWorker) -> None:
    def run() -> tuple[int, int, int, int]:
        store = make_store(1 << 30)
        store.checkin("s", [1, 2, 3, 4, 5], filled(5))
        cache, reused = store.checkout("s", [1, 2, 3, 9, 9, 9])
        offset = cache[0].offset
        assert "s" not in store  # checked out: not shared with a concurrent request
        store.checkin("s", [1, 2, 3], cache)
        # An identical prompt still leaves one token to prefill.
        cache2, reused2 = store.checkout("s", [1, 2, 3])
        return reused, offset, reused2, cache2[0].offset

    reused, offset, reused2, offset2 = mlx_worker.call(run)
    assert (reused, offset) == (3, 3)
    assert (reused2, offset2) == (2, 2)


def test_no_key_or_no_common_prefix_gives_a_fresh_cache(mlx_worker: MLXWorker) -> None:
    def run() -> tuple[int, int, int]:
        store = make_store(1 << 30)
        store.checkin("s", [1, 2, 3], filled(3))
        _, none_reused = store.checkout(None, [1, 2, 3, 4])
        fresh, reused = store.checkout("s", [7, 8])
        return none_reused, reused, fresh[0].offset

    assert mlx_worker.call(run) == (0, 0, 0)


def test_lru_eviction_by_bytes(mlx_worker: MLXWorker) -> None:
    def run() -> tuple[int, list[bool], int, int]:
        one = cache_nbytes(filled(10))
        store = make_store(2 * one)  # room for two entries
        store.checkin("a", list(range(10)), filled(10))
        store.checkin("b", list(range(10)), filled(10))
        # Touch "a" (check out + in) so "b" becomes the least recently used.
        cache, _ = store.checkout("a", list(range(11)))
        store.checkin("a", list(range(10)), cache)
        store.checkin("c", list(range(10)), filled(10))
        present = ["a" in store, "b" in store, "c" in store]
        return one, present, store.nbytes, len(store)

    one, present, nbytes, n = mlx_worker.call(run)
    assert present == [True, False, True]
    assert n == 2 and nbytes == 2 * one


def test_entry_larger_than_the_budget_is_not_kept(mlx_worker: MLXWorker) -> None:
    def run() -> tuple[bool, int]:
        store = make_store(16)
        store.checkin("big", [1, 2, 3], filled(3))
        return "big" in store, store.nbytes

    assert mlx_worker.call(run) == (False, 0)


def test_empty_prompt_is_rejected(mlx_worker: MLXWorker) -> None:
    with pytest.raises(ValueError, match="empty prompt"):
        mlx_worker.call(lambda: make_store(1).checkout("s", []))


def test_holds_names_the_exact_tokens_in_store(mlx_worker: MLXWorker) -> None:
    def run() -> list[bool]:
        store = make_store(1 << 30)
        before = store.holds("s", [])
        store.checkin("s", [1, 2, 3], filled(3))
        got = [before, store.holds("s", [1, 2, 3]), store.holds("s", [1, 2])]
        store.checkout("s", [1, 2, 3])  # checked out by a turn: no longer in store
        return [*got, store.holds("s", [1, 2, 3])]

    assert mlx_worker.call(run) == [False, True, False, False]


def test_a_new_key_copies_the_longest_prefix_of_its_own_group_only(mlx_worker: MLXWorker) -> None:
    import mlx.core as mx

    def run() -> None:
        store = make_store(1 << 30)
        persona = list(range(100, 100 + SHARED_MIN + 8))
        store.checkin("ann/s1", [*persona, 1, 2], filled(len(persona) + 2))
        store.checkin("ann/s2", [*persona[:-4], 7], filled(len(persona) - 3))
        # another user, a key without a group: nothing shared
        assert store.checkout("bob/s1", [*persona, 5])[1] == 0
        assert store.checkout("loner", [*persona, 5])[1] == 0
        cache, reused = store.checkout("ann/s3", [*persona, 5])
        assert reused == len(persona) and cache[0].offset == len(persona)
        assert "ann/s1" in store and "ann/s3" not in store  # the donor stays; a copy left
        # a copy: writing over the donor's buffer in place does not reach it
        donor = store._entries["ann/s1"].cache[0]
        donor.keys[..., :4, :] = mx.ones((1, 2, 4, 8))
        mx.eval(donor.keys)
        assert float(cache[0].keys[..., :4, :].sum()) == 0.0
        # too short a common prefix is not worth a copy
        assert store.checkout("ann/s4", [*persona[: SHARED_MIN - 1], 9, 9])[1] == 0

    mlx_worker.call(run)


def test_the_public_prefix_is_shared_by_every_key(mlx_worker: MLXWorker) -> None:
    """The template's own preamble is the same for every request: any key, any group, even a
    key without one, starts from a copy of its KV once a prompt held it; nothing more."""
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    public = [1, 2, 3, 4, 5, 6]

    def run() -> None:
        store = PromptCacheStore(1 << 30, lambda: [KVCache() for _ in range(LAYERS)], public)
        # nobody held it yet: nothing to copy
        assert store.checkout("ann/s1", [*public, 50, 51])[1] == 0
        donor = filled(len(public) + 3)
        donor[0].keys[..., : len(public), :] = mx.full((1, 2, len(public), 8), 3.0)
        mx.eval(donor[0].keys)
        store.checkin("ann/s1", [*public, 50, 51, 52], donor)
        for key in ("bob/s1", "stateless:carol", "ann/s2"):
            cache, reused = store.checkout(key, [*public, 60, 61])
            assert reused == len(public) == cache[0].offset, key
            assert float(cache[0].keys[..., : len(public), :].min()) == 3.0  # the donor's KV
        # only the public tokens: bob does not get ann's words after them, and a prompt that
        # leaves the preamble early gets as much of it as it shares
        assert store.checkout("bob/s2", [*public, 50, 51, 52, 53])[1] == len(public)
        assert store.checkout("bob/s3", [1, 2, 3, 99])[1] == 3
        # a copy: the donor's buffers written in place later do not reach it
        donor[0].keys[..., :2, :] = mx.zeros((1, 2, 2, 8))
        mx.eval(donor[0].keys)
        assert store.checkout("dan/s1", [*public, 7])[1] == len(public)
        assert float(store._public[0].keys[..., :2, :].min()) == 3.0  # type: ignore[index]
        store.clear()
        assert store.checkout("erin/s1", [*public, 7])[1] == 0

    mlx_worker.call(run)
