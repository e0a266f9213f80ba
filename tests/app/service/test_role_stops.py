"""A reply never goes on to speak for the user: role prefixes end generation (issue 12)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import LiveServer, make_settings, sse_events

from app.llm.types import Chunk
from app.personas.loader import load_personas
from app.service.chat import ChatService
from app.service.generation import role_stops
from app.service.turns import TurnOptions

PERSONAS = Path(__file__).resolve().parents[3] / "personas"


def test_turns_stop_at_a_role_prefix_after_the_callers_own_stops(tmp_path: Path) -> None:
    pippa = load_personas(PERSONAS)["pippa"]
    chat = ChatService(make_settings(tmp_path), None, None, None)  # type: ignore[arg-type]
    params = chat.generation_params(pippa, TurnOptions(stop=("END", "\nuser:")))
    assert params.stop[:2] == ("END", "\nuser:")  # the caller's first, none twice
    assert set(role_stops(pippa)) <= set(params.stop)
    assert "\n아빠:" in params.stop and len(params.stop) == len(set(params.stop))
    assert chat.generation_params(pippa, TurnOptions()).stop == role_stops(pippa)


# -- a model that goes on to speak for the user is cut there, streamed and stored alike ---------
SCRIPT = ["That sounds nice!", " Tell me more.\nus", "er: Do you have", " any thoughts?"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("stops"))) as s:
        yield s


@pytest.fixture
def scripted(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The engine replaced by one that ignores stop strings and says SCRIPT (split so that the
    prefix straddles two chunks); the params it was given are recorded."""
    seen: list[Any] = []

    async def stream(messages: Any, params: Any, cache_key: Any = None) -> AsyncIterator[Chunk]:
        seen.append(params)
        for text in SCRIPT:
            yield Chunk(text=text, token_ids=[1])
        yield Chunk(text="", finish_reason="length")

    monkeypatch.setattr(server.services.engine, "stream", stream)
    return seen


def session(server: LiveServer, persona: str) -> str:
    r = httpx.post(f"{server.url}/v1/sessions", json={"persona": persona}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("persona", ["assistant", "pippa"])
def test_a_reply_that_speaks_for_the_user_is_cut_there(
    server: LiveServer, scripted: list[Any], persona: str
) -> None:
    sid = session(server, persona)
    url = f"{server.url}/v1/sessions/{sid}/messages"
    whole = httpx.post(url, json={"content": "I went hiking."}, timeout=60).json()
    assert whole["reply"]["content"] == "That sounds nice! Tell me more."
    with httpx.stream("POST", url, json={"content": "Again.", "stream": True}, timeout=60) as r:
        events = list(sse_events(r.iter_lines()))
    streamed = "".join(d["text"] for e, d in events if e == "delta")
    done = next(d for e, d in events if e == "done")
    assert streamed == done["reply"]["content"] == "That sounds nice! Tell me more."
    stored = httpx.get(f"{url}", timeout=60).json()["messages"]
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [streamed, streamed]
    assert "\nuser:" in scripted[0].stop


def test_the_persona_user_name_is_a_stop_too(server: LiveServer, scripted: list[Any]) -> None:
    SCRIPT[1] = " Tell me more.\n아"
    SCRIPT[2] = "빠: 응 알았어"
    try:
        sid = session(server, "pippa")
        r = httpx.post(
            f"{server.url}/v1/sessions/{sid}/messages", json={"content": "hi"}, timeout=60
        )
        assert r.json()["reply"]["content"] == "That sounds nice! Tell me more."
    finally:
        SCRIPT[1], SCRIPT[2] = " Tell me more.\nus", "er: Do you have"


def test_a_reply_in_an_imported_transcripts_form_loses_the_speakers_label(
    server: LiveServer, scripted: list[Any]
) -> None:
    """Imported turns read "Caroline: ...": a small model answers "Caroline: ..." too, then goes
    on as the other speaker. The label is dropped, the other speaker's line ends the reply."""
    saved = SCRIPT[:]
    SCRIPT[:] = ["Carol", "ine: That sounds", " nice!\nMel", "anie: Thanks!"]
    try:
        sid = session(server, "assistant")
        said = [
            {"role": "user", "content": "Caroline: I went to a support group yesterday."},
            {"role": "assistant", "content": "Melanie: That's great, how was it?"},
        ]
        r = httpx.post(
            f"{server.url}/v1/sessions/{sid}/history", json={"messages": said}, timeout=60
        )
        assert r.status_code in (200, 201), r.text
        url = f"{server.url}/v1/sessions/{sid}/messages"
        with httpx.stream("POST", url, json={"content": "And?", "stream": True}, timeout=60) as s:
            events = list(sse_events(s.iter_lines()))
        streamed = "".join(d["text"] for e, d in events if e == "delta")
        done = next(d for e, d in events if e == "done")
        assert streamed == done["reply"]["content"] == "That sounds nice!"
        assert {"\nCaroline:", "\nMelanie:"} <= set(scripted[-1].stop)
    finally:
        SCRIPT[:] = saved
