"""Per-user rate and concurrency limits on the real server: 429, Retry-After, the limit named."""

from __future__ import annotations

import threading

import pytest
from support.server import LiveServer, error_of, sse_events


def test_rate_limit_is_per_user_with_retry_after(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.settings, "rate_limit_per_minute", 5)
    _, key = server.new_key()
    _, other = server.new_key()
    with server.client(key) as c, server.client(other) as o:
        codes = [c.get("/v1/sessions").status_code for _ in range(5)]
        assert codes == [200] * 5
        r = c.get("/v1/sessions")
        err = error_of(r, 429)
        assert err["code"] == "rate_limited"
        assert "5 requests per minute" in err["message"]
        assert "MEMENTO_RATE_LIMIT_PER_MINUTE" in err["message"]
        # one token comes back every 12 s at 5/min
        assert 1 <= int(r.headers["retry-after"]) <= 12
        # another user has their own bucket; health and the page are never limited
        assert o.get("/v1/sessions").status_code == 200
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200


def test_concurrency_limit_counts_a_streaming_reply_until_it_ends(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.settings, "max_concurrent_per_user", 1)
    _, key = server.new_key()
    _, other = server.new_key()
    with server.client(key) as c, server.client(other) as o:
        sid = c.post(
            "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "buffer"}}
        ).json()["id"]
        first_delta = threading.Event()
        release = threading.Event()
        events: list[str] = []

        def stream() -> None:
            with (
                server.client(key) as s,
                s.stream(
                    "POST",
                    f"/v1/sessions/{sid}/messages",
                    json={
                        "content": "Count from one to twenty.",
                        "stream": True,
                        "max_tokens": 24,
                        "temperature": 0,
                    },
                ) as r,
            ):
                for event, _ in sse_events(r.iter_lines()):
                    events.append(event)
                    if event == "delta" and not first_delta.is_set():
                        first_delta.set()
                        release.wait(120)

        t = threading.Thread(target=stream)
        t.start()
        try:
            assert first_delta.wait(300), "no delta arrived"
            # reads are not counted (the page fans them out); work is
            assert c.get(f"/v1/sessions/{sid}/messages").status_code == 200
            r = c.post(f"/v1/sessions/{sid}/context", json={"content": "hi"})
            err = error_of(r, 429)
            assert err["code"] == "too_many_concurrent"
            assert "at most 1 requests in flight" in err["message"]
            assert "MEMENTO_MAX_CONCURRENT_PER_USER" in err["message"]
            assert int(r.headers["retry-after"]) >= 1
            # not another user's problem
            assert o.post("/v1/sessions", json={"persona": "assistant"}).status_code == 201
        finally:
            release.set()
            t.join(300)
        assert events[-1] == "done", events
        # the slot was given back
        assert c.post(f"/v1/sessions/{sid}/context", json={"content": "hi"}).status_code == 200
        assert (
            server.app.state.rate_limiter.in_flight(server.services.store.verify_api_key(key).id)
            == 0
        )
