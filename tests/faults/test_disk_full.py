"""The disk fills up under the embedded SQLite database (issue 15), simulated portably with
SQLite's own limit (`PRAGMA max_page_count` on every connection of the live server's store:
the database cannot grow, exactly as on a full filesystem, SQLITE_FULL). Requests that would
write answer 507 naming the cause at once; reads go on; no turn is half-stored; a reply that
finished while the disk was full is written once space returns, not left pending; and
`PRAGMA integrity_check` is ok throughout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from support.fake_llm import BEFORE_FAULT, FakeModelServer
from support.server import LiveServer, assert_error, make_settings, sse_events, wait_until

BIG = "The harbour at dawn. " * 350  # ~7 KB: needs fresh pages wherever it is written
TOKENS = ["Once", " upon", " a", BIG]


class Disk:
    """Caps (and uncaps) the size of the live store's SQLite database."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.cap: int | None = None
        event.listen(store.engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # 2**31-2 pages: SQLite's own maximum (the limit is per connection)
        cur.execute(f"PRAGMA max_page_count={self.cap or 2_147_483_646}")
        cur.close()

    def fill(self) -> None:
        with self.store.engine.connect() as conn:
            self.cap = int(conn.execute(text("PRAGMA page_count")).scalar() or 0)
        self.store.engine.dispose()  # every connection from now on has the cap

    def free(self) -> None:
        self.cap = None
        self.store.engine.dispose()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveServer, FakeModelServer, Disk]]:
    with FakeModelServer("ok", tokens=TOKENS) as upstream:
        settings = make_settings(tmp_path, llm_url=upstream.url, warm_next_turn=False)
        with LiveServer(settings) as server:
            yield server, upstream, Disk(server.services.store)


def _messages(http: httpx.Client, sid: str) -> list[dict[str, Any]]:
    return http.get(f"/v1/sessions/{sid}/messages").json()["messages"]


def test_a_full_disk_is_a_clear_507_and_nothing_is_half_stored(
    live: tuple[LiveServer, FakeModelServer, Disk],
) -> None:
    server, upstream, disk = live
    with server.client(timeout=60) as http:
        sid = http.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
        assert http.post(f"/v1/sessions/{sid}/messages", json={"content": "hi"}).status_code == 200
        before = _messages(http, sid)
        disk.fill()
        resp = http.post(f"/v1/sessions/{sid}/messages", json={"content": BIG})
        err = assert_error(resp, 507)
        assert err["code"] == "storage_full" and "database or disk is full" in err["message"]
        # reads go on; the refused turn left nothing behind (no user message without reply)
        assert _messages(http, sid) == before
        assert http.get("/healthz").status_code == 200
        assert server.services.store.integrity_check() == "ok"
        # space returns: the same request works, without a restart
        disk.free()
        done = http.post(f"/v1/sessions/{sid}/messages", json={"content": BIG})
        assert done.status_code == 200, done.text
        assert done.json()["reply"]["status"] == "complete"
    assert server.services.store.integrity_check() == "ok"


def test_a_reply_finished_on_a_full_disk_is_stored_when_space_returns(
    live: tuple[LiveServer, FakeModelServer, Disk],
) -> None:
    server, upstream, disk = live
    upstream.mode = "hold"
    with server.client(timeout=60) as http:
        sid = http.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
        body = {"content": "Tell me about the harbour.", "stream": True}
        with http.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
            lines = r.iter_lines()
            assert upstream.streaming.wait(60)
            disk.fill()  # the disk fills while the reply is being generated
            upstream.release()
            events = list(sse_events(lines))
        names = [e for e, _ in events]
        assert names[-1] == "error" and "done" not in names, names
        assert events[-1][1]["error"]["code"] == "storage_full"
        streamed = "".join(d["text"] for e, d in events if e == "delta")
        assert streamed == "".join(TOKENS)
        reply = _messages(http, sid)[-1]
        assert reply["status"] == "pending"  # not lost: waiting for space
        assert server.services.store.integrity_check() == "ok"
        disk.free()
        stored = wait_until(
            lambda: (m := _messages(http, sid)[-1])["status"] != "pending" and m,
            "the reply to be written once space returned",
        )
        assert stored["status"] == "complete" and stored["content"] == streamed
        assert len("".join(TOKENS[:BEFORE_FAULT])) < len(stored["content"])
    assert server.services.store.integrity_check() == "ok"
