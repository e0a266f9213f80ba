"""PostgreSQL kills Memento's connections (issue 15): a restart, a failover or an operator's
pg_terminate_backend. Real PostgreSQL (127.0.0.1:5432, database `test`, or
MEMENTO_TEST_PG_URL; skipped with the reason when unreachable), a real Memento on it. Only the
connections of this test's server are killed (its own application_name): the database is
shared. No request fails afterwards (the pool replaces dead connections), a reply being
generated while they die is stored whole, nothing is half-stored; and an unreachable database
answers 503 with Retry-After at once, not after a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_llm import TOKENS, FakeModelServer
from support.postgres import RAW_URL, throwaway_schema
from support.proc import free_port
from support.server import LiveServer, assert_error, make_settings, sse_events


@pytest.fixture
def schema_url() -> Iterator[tuple[str, str]]:
    # the server's connections are named after the schema: kill_connections finds only them
    with throwaway_schema("memento_faults_", application_name=True) as schema:
        yield schema.url, schema.name


def kill_connections(app_name: str) -> int:
    import psycopg

    with psycopg.connect(RAW_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app_name,),
        ).fetchall()
    return len(rows)


def test_killed_connections_heal_and_lose_nothing(
    tmp_path: Path, schema_url: tuple[str, str]
) -> None:
    url, app_name = schema_url
    with FakeModelServer("ok") as upstream:
        settings = make_settings(tmp_path, database_url=url, llm_url=upstream.url)
        with LiveServer(settings) as server, server.client(timeout=60) as http:
            sid = http.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
            assert http.post(f"/v1/sessions/{sid}/messages", json={"content": "a"}).is_success
            assert kill_connections(app_name) >= 1
            # the next requests just work: dead pooled connections are replaced
            assert http.get(f"/v1/sessions/{sid}/messages").status_code == 200
            assert http.post(f"/v1/sessions/{sid}/messages", json={"content": "b"}).is_success
            # killed again while a reply is being generated: it is stored whole
            upstream.mode = "hold"
            body = {"content": "c", "stream": True}
            with http.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
                lines = r.iter_lines()
                assert upstream.streaming.wait(60)
                kill_connections(app_name)
                upstream.release()
                events = list(sse_events(lines))
            assert events[-1][0] == "done", events[-1]
            stored = http.get(f"/v1/sessions/{sid}/messages").json()["messages"]
            assert [(m["role"], m["content"]) for m in stored if m["role"] == "user"] == [
                ("user", "a"),
                ("user", "b"),
                ("user", "c"),
            ]
            assert [m["status"] for m in stored] == ["complete"] * 6
            assert stored[-1]["content"] == "".join(TOKENS)


def test_an_unreachable_database_is_a_503_with_retry_after(tmp_path: Path) -> None:
    # a started server whose database then goes away: requests answer 503 within the
    # connect timeout; here, a server started on a live store whose URL is then pointed at a
    # port nobody listens on (the same engine code path as a stopped PostgreSQL)
    from app.store.repo import Store

    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    with FakeModelServer("ok") as upstream:
        settings = make_settings(tmp_path, llm_url=upstream.url)
        with LiveServer(settings) as server, server.client(timeout=60) as http:
            live_store = server.services.store
            gone = Store(dead, migrate_schema=False)
            kept = live_store.engine, live_store._sm, live_store._read_sm
            try:
                # every store call of the running service now goes to the dead database
                live_store.engine, live_store._sm, live_store._read_sm = (
                    gone.engine,
                    gone._sm,
                    gone._read_sm,
                )
                resp = http.get("/v1/sessions")
                err = assert_error(resp, 503)
                assert err["code"] == "store_unavailable" and "127.0.0.1" in err["message"]
                assert resp.headers["retry-after"] == "5"
            finally:
                live_store.engine, live_store._sm, live_store._read_sm = kept
                gone.close()
            assert http.get("/v1/sessions").status_code == 200  # and back when it is
