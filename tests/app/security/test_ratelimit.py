"""RateLimiter arithmetic with an injected clock (no sleeping, no timing assertions)."""

from __future__ import annotations

from app.security.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_of_the_per_minute_rate_then_refills() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    assert [rl.take("u", 6) for _ in range(6)] == [0.0] * 6
    wait = rl.take("u", 6)
    assert wait == 10.0  # one request per 10 s at 6/min
    clock.now += 5
    assert rl.take("u", 6) == 5.0
    clock.now += 5
    assert rl.take("u", 6) == 0.0
    clock.now += 3600  # refills to capacity, never beyond
    assert [rl.take("u", 6) for _ in range(7)].count(0.0) == 6


def test_buckets_are_per_user() -> None:
    rl = RateLimiter(Clock())
    for _ in range(3):
        rl.take("a", 3)
    assert rl.take("a", 3) > 0
    assert rl.take("b", 3) == 0.0


def test_in_flight_counts_and_releases() -> None:
    rl = RateLimiter(Clock())
    assert rl.enter("u", 2) and rl.enter("u", 2)
    assert not rl.enter("u", 2)
    assert rl.enter("v", 2)
    rl.leave("u")
    assert rl.in_flight("u") == 1 and rl.enter("u", 2)
    for _ in range(5):
        rl.leave("u")  # never below zero
    assert rl.in_flight("u") == 0


def test_retry_after_is_a_whole_number_of_seconds_at_least_one() -> None:
    assert retry_after(0.01) == b"1"
    assert retry_after(10.0) == b"10"
    assert retry_after(10.2) == b"11"
