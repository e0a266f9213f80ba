"""The remote model server fails mid-reply (issue 15): a real Memento generating on a real
HTTP model server that sends an error event, is cut mid-stream, or ends the body without
finishing. The reply is stored as `error` with the text so far, the client gets an `error`
event (never `done`), the user's message is kept, and the next turn works."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.fake_llm import BEFORE_FAULT, TOKENS, FakeModelServer
from support.server import LiveServer, make_settings, sse_events

SO_FAR = "".join(TOKENS[:BEFORE_FAULT])


@pytest.mark.parametrize("mode", ["error", "drop", "eof"])
def test_a_failing_model_server_gives_an_error_and_keeps_the_text_so_far(
    tmp_path: Path, mode: str
) -> None:
    with FakeModelServer(mode) as upstream:
        settings = make_settings(tmp_path, llm_url=upstream.url, warm_next_turn=False)
        with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=120) as http:
            sid = http.post("/v1/sessions", json={"persona": "assistant"}).json()["id"]
            body = {"content": "Tell me a story.", "stream": True}
            with http.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
                events = list(sse_events(r.iter_lines()))
            names = [e for e, _ in events]
            assert "done" not in names and names[-1] == "error", names
            assert "".join(d["text"] for e, d in events if e == "delta") == SO_FAR
            error = events[-1][1]["error"]
            assert error["code"] == "engine_error" and upstream.url in error["message"]
            stored = http.get(f"/v1/sessions/{sid}/messages").json()["messages"]
            assert [(m["role"], m["status"]) for m in stored] == [
                ("user", "complete"),
                ("assistant", "error"),
            ]
            assert stored[0]["content"] == "Tell me a story." and stored[1]["content"] == SO_FAR
            # not JSON either: a 503 naming the failure, and the reply kept the same way
            upstream.mode = mode
            resp = http.post(f"/v1/sessions/{sid}/messages", json={"content": "Again?"})
            assert resp.status_code == 503 and upstream.url in resp.json()["error"]["message"]
            # the server comes back: the next turn is whole, and memory never saw the cut one
            upstream.mode = "ok"
            done = http.post(f"/v1/sessions/{sid}/messages", json={"content": "Once more."})
            assert done.status_code == 200, done.text
            assert done.json()["reply"] == {**done.json()["reply"], "status": "complete"}
            assert done.json()["reply"]["content"] == "".join(TOKENS)
            stored = http.get(f"/v1/sessions/{sid}/messages").json()["messages"]
            assert [m["status"] for m in stored] == ["complete", "error"] * 2 + ["complete"] * 2
            assert not any(m["status"] == "pending" for m in stored)
