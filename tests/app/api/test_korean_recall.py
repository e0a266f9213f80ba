"""Korean memory through the HTTP API of a live server with the real multilingual embedder (E5,
real model, SQLite, Chroma): a fact told in casual Korean is recalled when asked in other words,
the index names its embedder, and another user asking the same never sees it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest
from chromadb.config import Settings as ChromaSettings
from support.server import LiveServer, make_settings

from app.llm.types import DEFAULT_MEMORY_BIAS, GenerationParams
from memory.e5 import NAME as E5_NAME

FILLER = [
    ("user", "아빠 왔다! 오늘 회사에서 진짜 힘들었어 ㅠㅠ"),
    ("assistant", "아빠 고생했어! 저녁은 먹었어?"),
    ("user", "응 김치찌개 먹었지. 내일은 비 온대"),
    ("assistant", "우산 꼭 챙겨 아빠~"),
    ("user", "주말에 등산 갈까 생각 중이야"),
    ("assistant", "좋다! 날씨 좋으면 사진 보내줘 📸"),
]
TOLD = ("user", "아 맞다, 지난주에 강아지 입양했어! 이름은 콩이야. 완전 하얗고 귀여워")
REPLY = ("assistant", "헐 대박!! 사진 빨리 보여줘!")
QUESTION = "우리 댕댕이 이름이 뭐였지?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("korean")
    with LiveServer(make_settings(data, auth="required", embedder="e5")) as s:
        yield s


def user(server: LiveServer, name: str) -> httpx.Client:
    _, key = server.new_key(f"{name}-{secrets.token_hex(3)}")
    return server.client(key)


def session(c: httpx.Client) -> str:
    body = {"persona": "pippa", "memory": {"strategy": "vector", "buffer_tokens": 0}}
    r = c.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def recalled(c: httpx.Client, sid: str) -> list[dict[str, Any]]:
    r = c.post(f"/v1/sessions/{sid}/context", json={"content": QUESTION})
    assert r.status_code == 200, r.text
    # a session's first finds: the best nearest the question, the rest in the kept slot
    parts = [p for p in r.json()["parts"] if p["kind"] in ("kept", "recalled")]
    return [m for p in parts for m in p["messages"]]


def test_a_korean_fact_is_recalled_in_other_words_and_only_for_its_user(
    server: LiveServer,
) -> None:
    dad, stranger = user(server, "dad"), user(server, "stranger")
    sid = session(dad)
    turns = [*FILLER[:4], TOLD, REPLY, *FILLER[4:]] * 3  # the fact told once per sitting
    r = dad.post(
        f"/v1/sessions/{sid}/history",
        json={"messages": [{"role": ro, "content": t} for ro, t in turns]},
    )
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    told_ids = {ids[i] for i, t in enumerate(turns) if t == TOLD}
    got = recalled(dad, sid)
    assert told_ids & {m["id"] for m in got}, got
    assert any("콩이" in m["content"] for m in got)
    # the same question from another user, with the same words told, reaches only their own
    theirs = session(stranger)
    assert (
        stranger.post(
            f"/v1/sessions/{theirs}/history",
            json={"messages": [{"role": "user", "content": "오늘 날씨 좋다"}]},
        ).status_code
        == 201
    )
    assert all("콩이" not in m["content"] for m in recalled(stranger, theirs))


def test_the_index_names_the_multilingual_embedder(server: LiveServer) -> None:
    client = chromadb.PersistentClient(
        path=str(server.settings.data_dir / "chroma"),
        settings=ChromaSettings(anonymized_telemetry=False),
    )
    meta = client.get_collection("memento_turns").metadata
    assert (meta["embedder"], meta["embedder_dim"]) == (E5_NAME, 384)


def test_a_turn_lifts_the_words_its_recalled_notes_quote(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a real turn hands the engine the words of the notes its Context shows, to lift
    (`memory_bias`, pippa's default), and the persona's text to measure them against."""
    dad = user(server, "dad")
    sid = session(dad)
    turns = [*FILLER[:4], TOLD, REPLY, *FILLER[4:]] * 3
    r = dad.post(
        f"/v1/sessions/{sid}/history",
        json={"messages": [{"role": ro, "content": t} for ro, t in turns]},
    )
    assert r.status_code == 201, r.text
    engine = server.services.engine
    seen: list[GenerationParams] = []
    resolve = engine.resolve_bias

    def spy(params: GenerationParams) -> GenerationParams:
        seen.append(params)
        return resolve(params)

    monkeypatch.setattr(engine, "resolve_bias", spy)
    r = dad.post(f"/v1/sessions/{sid}/messages", json={"content": QUESTION, "max_tokens": 4})
    assert r.status_code == 200, r.text
    (params,) = seen
    assert params.memory_bias == DEFAULT_MEMORY_BIAS
    assert TOLD[1] in params.memory_notes
    assert any("Pippa" in text for text in params.memory_common)
    assert len(engine.resolve_bias(params).logit_bias) > 0
