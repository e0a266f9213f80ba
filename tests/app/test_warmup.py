"""Prefill while the user types (app/warmup.py), through the HTTP API of a live server on the
real model: after a reply, the next turn finds the start of its prompt already in the cache, and
with a draft (PUT .../draft) its recalled turns too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.server import LiveServer, make_settings, wait_until

HISTORY = [
    ("We planted tomatoes and basil in the garden this spring.", "Yum, fresh pesto soon!"),
    ("My sister moved to Busan last month.", "Busan! By the sea, lucky her."),
    ("The car is making a weird noise again.", "Uh oh, take it to the garage."),
    ("I started reading a book about bees.", "Bees are so cool. Tell me more!"),
    ("Grandma is visiting next weekend.", "Yay, I miss her cooking."),
    ("We adopted a kitten named Mochi.", "A kitten!! Send pictures."),
] * 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("warm"))) as s:
        yield s


def turn(client: httpx.Client, sid: str, content: str) -> dict[str, Any]:
    r = client.post(f"/v1/sessions/{sid}/messages", json={"content": content, "max_tokens": 8})
    assert r.status_code == 200, r.text
    return r.json()


def imported_session(c: httpx.Client, memory: dict[str, Any]) -> tuple[str, set[int]]:
    """A session with HISTORY imported, never a turn: its id and the imported messages' ids."""
    r = c.post("/v1/sessions", json={"persona": "assistant", "memory": memory})
    assert r.status_code == 201, r.text
    sid: str = r.json()["id"]
    messages = [
        {"role": role, "content": text}
        for pair in HISTORY
        for role, text in zip(("user", "assistant"), pair, strict=True)
    ]
    r = c.post(f"/v1/sessions/{sid}/history", json={"messages": messages})
    assert r.status_code == 201, r.text
    return sid, set(r.json()["ids"])


def recalling_session(c: httpx.Client, **params: Any) -> str:
    """A hybrid session whose imported history is in the vector index."""
    memory = {"strategy": "hybrid", "summarizer": "extractive", "buffer_tokens": 96, **params}
    sid, ids = imported_session(c, memory)
    wait_until(
        lambda: {i["id"] for i in c.get(f"/v1/sessions/{sid}/memory").json()["items"]} >= ids,
        "the imported turns to reach the vector index",
    )
    return sid


def test_the_next_turn_prefills_only_what_its_message_brings(server: LiveServer) -> None:
    with server.client() as c:
        sid = recalling_session(c)
        warmer = server.services.chat.warmer
        turn(c, sid, "What is growing in the garden?")
        wait_until(lambda: not warmer.warming(sid), "the warm-up after the first turn")
        second = turn(c, sid, "Where does my sister live now?")
        ctx = c.get(f"/v1/sessions/{sid}/context/{second['reply']['id']}").json()
    kinds = [p["kind"] for p in ctx["parts"]]
    # most of the first turn's finds showed in the kept slot already; the best one, nearest
    # the question, moved there after the reply: without the warm-up the second prompt would
    # differ from the first one's from there on
    assert "kept" in kinds and "recent" in kinds, kinds
    # persona .. recent buffer: the head the warm-up prefilled while "the user typed"
    head = sum(p["tokens"] for p in ctx["parts"] if p["kind"] not in ("recalled", "new"))
    usage = second["usage"]
    assert usage["cached_tokens"] >= head, (usage, kinds)
    assert usage["prompt_tokens"] - usage["cached_tokens"] < head


def test_an_import_warms_the_first_question_about_it(server: LiveServer) -> None:
    warmer = server.services.chat.warmer
    with server.client() as c:
        sid, _ = imported_session(c, {"strategy": "token_buffer"})
        wait_until(lambda: not warmer.warming(sid), "the warm-up after the import")
        first = turn(c, sid, "Where does my sister live now?")
        ctx = c.get(f"/v1/sessions/{sid}/context/{first['reply']['id']}").json()
    tokens = {p["kind"]: p["tokens"] for p in ctx["parts"]}
    assert tokens["recent"] > 0, tokens
    usage = first["usage"]
    # persona and the imported turns were prefilled before the question came; the question
    # and the reply's opening are what is left
    prefilled = usage["prompt_tokens"] - usage["cached_tokens"]
    assert prefilled <= tokens["new"] + 4, (usage, tokens)


def test_a_draft_warms_what_the_message_recalls(server: LiveServer) -> None:
    warmer = server.services.chat.warmer
    with server.client() as c:
        # nothing kept: every recalled turn is found anew for the message
        sid = recalling_session(c, kept_share=0)
        turn(c, sid, "What is growing in the garden?")
        wait_until(lambda: not warmer.warming(sid), "the warm-up after the first turn")
        question = "Where does my sister live now?"
        r = c.put(f"/v1/sessions/{sid}/draft", json={"content": question})
        assert r.status_code == 202, r.text
        assert r.json() == {"warming": True, "reason": None, "max_tokens": 8}  # the last turn's
        wait_until(lambda: not warmer.warming(sid), "the warm-up of the draft")
        second = turn(c, sid, question)
        ctx = c.get(f"/v1/sessions/{sid}/context/{second['reply']['id']}").json()
    tokens = {p["kind"]: p["tokens"] for p in ctx["parts"]}
    assert "recalled" in tokens, tokens
    usage = second["usage"]
    # all but the reply's opening ("<|im_start|>assistant\n") was in the cache: the recalled
    # turns the draft found and the message as drafted
    prefilled = usage["prompt_tokens"] - usage["cached_tokens"]
    assert prefilled <= 4 < tokens["new"], (usage, tokens)


def test_a_draft_is_not_warmed_while_a_reply_streams_or_when_warming_is_off(
    server: LiveServer,
) -> None:
    with server.client() as c:
        sid = recalling_session(c)
        body = {"content": "Tell me a long story about a fox.", "stream": True, "max_tokens": 24}
        with c.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as stream:
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event: delta"):
                    break  # generating now
            r = c.put(f"/v1/sessions/{sid}/draft", json={"content": "and then?"})
            assert r.status_code == 202, r.text
            assert r.json()["warming"] is False and "being generated" in r.json()["reason"]
            for _ in lines:
                pass
        settings = server.services.settings
        settings.warm_next_turn = False
        try:
            r = c.put(f"/v1/sessions/{sid}/draft", json={"content": "and then?"})
        finally:
            settings.warm_next_turn = True
        assert r.status_code == 202, r.text
        assert r.json()["warming"] is False and "MEMENTO_WARM_NEXT_TURN" in r.json()["reason"]
