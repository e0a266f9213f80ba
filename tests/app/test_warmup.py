"""Prefill while the user types (app/warmup.py), through the HTTP API of a live server on the
real model: after a reply, the next turn finds the start of its prompt already in the cache."""

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


def test_the_next_turn_prefills_only_what_its_message_brings(server: LiveServer) -> None:
    memory = {"strategy": "hybrid", "summarizer": "extractive", "buffer_tokens": 96}
    with server.client() as c:
        r = c.post("/v1/sessions", json={"persona": "assistant", "memory": memory})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        messages = [
            {"role": role, "content": text}
            for pair in HISTORY
            for role, text in zip(("user", "assistant"), pair, strict=True)
        ]
        ids = c.post(f"/v1/sessions/{sid}/history", json={"messages": messages}).json()["ids"]
        wait_until(
            lambda: (
                {i["id"] for i in c.get(f"/v1/sessions/{sid}/memory").json()["items"]} >= set(ids)
            ),
            "the imported turns to reach the vector index",
        )
        warmer = server.services.chat.warmer
        turn(c, sid, "What is growing in the garden?")
        wait_until(lambda: not warmer.warming(sid), "the warm-up after the first turn")
        second = turn(c, sid, "Where does my sister live now?")
        ctx = c.get(f"/v1/sessions/{sid}/context/{second['reply']['id']}").json()
    kinds = [p["kind"] for p in ctx["parts"]]
    # the first turn's recalled turns are kept from the second on: without the warm-up its
    # prompt would differ from the first one's right after the pinned facts
    assert "kept" in kinds and "recent" in kinds, kinds
    # persona .. recent buffer: the head the warm-up prefilled while "the user typed"
    head = sum(p["tokens"] for p in ctx["parts"] if p["kind"] not in ("recalled", "new"))
    usage = second["usage"]
    assert usage["cached_tokens"] >= head, (usage, kinds)
    assert usage["prompt_tokens"] - usage["cached_tokens"] < head
