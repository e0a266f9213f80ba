"""Memory upkeep in its own lane (app/session_memory.py), on the real model, SQLite and Chroma:
while the model writes a summary, the turns' own bookkeeping (kept recalled turns) is already
saved and used, and a user's edit made meanwhile survives the summary's save."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.server import make_settings, wait_until

from app.main import create_app
from memory.summarizer import LLMSummarizer
from memory.types import StoredMessage

LINES = (
    "My sister Mina keeps bees in Busan.",
    "I am learning to play the cello on Sundays.",
    "Our cat Miso only eats tuna.",
    "Next spring we are flying to Lisbon.",
    "What was my sister's hobby again?",
)


@pytest.fixture
def held_summaries(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The model's summaries wait until the event is set."""
    gate = threading.Event()
    summarize = LLMSummarizer.summarize

    async def held(self: LLMSummarizer, messages: Sequence[StoredMessage]) -> str:
        await asyncio.to_thread(gate.wait, 300)
        return await summarize(self, messages)

    monkeypatch.setattr(LLMSummarizer, "summarize", held)
    yield gate
    gate.set()


def parts(c: TestClient, sid: str, content: str) -> dict[str, Any]:
    r = c.post(f"/v1/sessions/{sid}/context", json={"content": content})
    assert r.status_code == 200, r.text
    return {p["kind"]: p for p in r.json()["parts"]}


def test_turns_go_on_while_the_summary_is_written(
    tmp_path: Any, held_summaries: threading.Event
) -> None:
    memory = {
        "strategy": "hybrid",
        "buffer_tokens": 48,
        "summary_chunk_tokens": 256,
        "summarizer": "llm",  # the one that takes the model's time (held here)
    }
    with TestClient(create_app(make_settings(tmp_path))) as c:
        sid = c.post("/v1/sessions", json={"persona": "assistant", "memory": memory}).json()["id"]
        for line in LINES:
            r = c.post(f"/v1/sessions/{sid}/messages", json={"content": line, "max_tokens": 8})
            assert r.status_code == 200, r.text
        # the buffer let turns go and the summary of them is held: the turns are observed all
        # the same, and the recalled turns the replies were given are kept for the next prompt
        session_memory = c.app.state.services.chat.memory  # type: ignore[attr-defined]
        wait_until(lambda: not session_memory.observing(sid), "the turns to be observed")
        kept = parts(c, sid, "Tell me more.")["kept"]
        assert kept["messages"]
        assert c.get(f"/v1/sessions/{sid}/memory").json()["summary"] == ""
        # a user's edit while the summary is being written
        r = c.patch(f"/v1/sessions/{sid}/memory", json={"pinned": [{"text": "Dad's cat: Miso"}]})
        assert r.status_code == 200, r.text
        held_summaries.set()
        stored = wait_until(
            lambda: (m := c.get(f"/v1/sessions/{sid}/memory").json())["summary"] and m,
            "the summary to be written",
        )
        assert "Dad's cat: Miso" in [p["text"] for p in stored["pinned"]]
        assert parts(c, sid, "Tell me more.")["kept"]["messages"] == kept["messages"]
