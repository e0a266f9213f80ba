"""Per-user request rate (token bucket) and concurrency (in-flight requests) limits -> 429.

Both are per process: with several replicas each enforces its own share. Every request counts
toward the rate. The concurrency limit counts requests that do work (POST, PATCH, PUT, DELETE:
generation, imports, edits): reads are short and the web page fans them out (one GET per
persona), so counting them would refuse a page load, not protect the model. A request is in
flight from its first byte until its response ends (a streamed reply counts until its last
event), so a client cannot dodge the limit by streaming.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from app.security.auth import is_public, send_error

READS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TRACKED_USERS = 100_000  # buckets of idle users are dropped beyond this (they refill anyway)


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0


class RateLimiter:
    """Token buckets (capacity = per-minute rate, refilled continuously) and in-flight counts.

    Thread-safe and clock-injectable so the arithmetic is testable without sleeping.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, user: str, per_minute: int, now: float) -> _Bucket:
        b = self._buckets.get(user)
        if b is None:
            b = self._buckets[user] = _Bucket(tokens=float(per_minute), stamp=now)
            while len(self._buckets) > MAX_TRACKED_USERS:
                oldest, ob = next(iter(self._buckets.items()))
                if ob.in_flight:
                    break
                del self._buckets[oldest]
        else:
            self._buckets.move_to_end(user)
            b.tokens = min(float(per_minute), b.tokens + (now - b.stamp) * per_minute / 60.0)
            b.stamp = now
        return b

    def take(self, user: str, per_minute: int) -> float:
        """Spend one request; 0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            b = self._bucket(user, per_minute, now)
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) * 60.0 / per_minute

    def enter(self, user: str, limit: int) -> bool:
        """Count a request in flight; False (not counted) if the user already has `limit`."""
        with self._lock:
            b = self._buckets.get(user)
            if b is None:
                b = self._buckets[user] = _Bucket(tokens=0.0, stamp=self.clock())
            if b.in_flight >= limit:
                return False
            b.in_flight += 1
            return True

    def leave(self, user: str) -> None:
        with self._lock:
            b = self._buckets.get(user)
            if b is not None and b.in_flight > 0:
                b.in_flight -= 1

    def in_flight(self, user: str) -> int:
        with self._lock:
            b = self._buckets.get(user)
            return b.in_flight if b is not None else 0


def retry_after(seconds: float) -> bytes:
    return str(max(1, math.ceil(seconds))).encode()


class RateLimitMiddleware:
    """429 with Retry-After once a user is over either limit. Runs inside AuthMiddleware.

    `limits()` returns (per_minute, max_concurrent) read at each request, so a changed Settings
    object takes effect at once; `user_of(scope)` names the caller (the authenticated user, or
    the local user when auth is off).
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: Callable[[], tuple[int, int]],
        user_of: Callable[[Scope], str | None],
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.user_of = user_of
        self.limiter = limiter or RateLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        user = self.user_of(scope)
        if user is None:  # not identified (starting): nothing to count against
            await self.app(scope, receive, send)
            return
        per_minute, concurrent = self.limits()
        wait = self.limiter.take(user, per_minute)
        if wait > 0:
            await send_error(
                send,
                429,
                "rate_limited",
                f"rate limit exceeded: at most {per_minute} requests per minute per user "
                f"(MEMENTO_RATE_LIMIT_PER_MINUTE); retry in {math.ceil(wait)} s",
                None,
                [(b"retry-after", retry_after(wait))],
            )
            return
        if scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        if not self.limiter.enter(user, concurrent):
            await send_error(
                send,
                429,
                "too_many_concurrent",
                f"concurrency limit exceeded: at most {concurrent} requests in flight per user "
                "(MEMENTO_MAX_CONCURRENT_PER_USER); wait for one to finish",
                None,
                [(b"retry-after", b"1")],
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.leave(user)
