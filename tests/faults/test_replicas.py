"""Another instance on the same database (issue 15): a replica that starts, restarts or sweeps
while another generates never marks that live reply interrupted; once the generating process
dies (kill -9) its reply is taken for abandoned only after its lease runs out, by the surviving
instance, without a restart.

Real processes and HTTP: instance A is a `memento serve` subprocess, instance B an in-process
server on the same SQLite database (its own data directory, as a replica has), both on a real
model server held mid-reply so the reply is pending for as long as the test needs.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from support.fake_llm import BEFORE_FAULT, TOKENS, FakeModelServer
from support.proc import ServerProcess
from support.server import LiveServer, make_settings, wait_until

LEASE = 3  # seconds: A's replies are vouched for this long past each renewal


def _last(http: httpx.Client, sid: str) -> dict:
    return http.get(f"/v1/sessions/{sid}/messages").json()["messages"][-1]


def test_a_replica_never_flips_a_live_reply_and_sweeps_a_dead_ones(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with FakeModelServer("hold") as upstream:
        a = ServerProcess(
            tmp_path / "a",
            MEMENTO_DATABASE_URL=db,
            MEMENTO_LLM_URL=upstream.url,
            MEMENTO_REPLY_LEASE_SECONDS=str(LEASE),
            MEMENTO_REPLY_CHECKPOINT_SECONDS="0",
            MEMENTO_WARM_NEXT_TURN="false",
        ).start()
        try:
            with httpx.Client(base_url=a.url, timeout=120) as http_a:
                sid = http_a.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
                body = {"content": "Tell me a story.", "stream": True}
                with http_a.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
                    lines = r.iter_lines()
                    assert upstream.streaming.wait(120)
                    # B starts (start-up recovery) while A's reply is held mid-generation
                    settings = make_settings(tmp_path / "b", database_url=db, llm_url=upstream.url)
                    with LiveServer(settings) as b, b.client(timeout=120) as http_b:
                        held = wait_until(
                            lambda: (m := _last(http_b, sid))["content"] and m,
                            "A's first checkpoint",
                        )
                        assert held["status"] == "pending"
                        # several of B's sweeps (every lease/3 of B's own 6 s lease: one
                        # forced here) and of A's renewals later, still A's
                        assert b.services.store.recover_pending() == 0
                        assert _last(http_b, sid)["status"] == "pending"
                        upstream.release()
                        rest = "".join(lines)
                        assert "event: done" in rest
                    assert _last(http_a, sid)["status"] == "complete"
                    assert _last(http_a, sid)["content"] == "".join(TOKENS)

                # now A dies by kill -9 in the middle of a reply
                upstream._release.clear()
                upstream.streaming.clear()
                with http_a.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
                    assert upstream.streaming.wait(120)
                    wait_until(lambda: _last(http_a, sid)["content"], "A's checkpoint")
                    a.kill()
            settings = make_settings(
                tmp_path / "b", database_url=db, llm_url=upstream.url, reply_lease_seconds=3
            )
            with LiveServer(settings) as b, b.client(timeout=120) as http_b:
                # B was already running in the real scene; here it starts after the kill and
                # A's lease may still be live: either its start-up recovery or its periodic
                # sweep takes the reply, with the text A had checkpointed
                cut = wait_until(
                    lambda: (m := _last(http_b, sid))["status"] != "pending" and m,
                    "the dead instance's reply to be swept",
                )
                assert cut["status"] == "interrupted"
                assert cut["content"] == "".join(TOKENS[:BEFORE_FAULT])
                # and the session goes on on B
                upstream.release()
                upstream.mode = "ok"
                resp = http_b.post(f"/v1/sessions/{sid}/messages", json={"content": "Go on."})
                assert resp.status_code == 200 and resp.json()["reply"]["status"] == "complete"
        finally:
            a.kill()
