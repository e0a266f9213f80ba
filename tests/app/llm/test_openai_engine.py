"""OpenAIEngine: protocol parsing and error mapping (real-server test: with the service)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import tiktoken

from app.llm.approx_counter import ApproxCounter, encoding_from_bpe_vocab
from app.llm.openai_engine import OpenAIEngine
from app.llm.types import EngineError, GenerationParams


def _counter() -> ApproxCounter:
    vocab = ["a", "b", "ab", "Ġ", "Ġab"]
    return ApproxCounter(encoding_from_bpe_vocab(vocab))


def _sse(events: list[dict]) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def _engine(handler) -> OpenAIEngine:
    return OpenAIEngine(
        "http://model.test/v1",
        _counter(),
        context_window=2048,
        model_id="m",
        transport=httpx.MockTransport(handler),
    )


async def test_stream_parses_deltas_finish_and_usage() -> None:
    seen: dict = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        events = [
            {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
            {"choices": [{"delta": {"content": "lo"}, "finish_reason": "length"}]},
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 7},
                },
            },
        ]
        return httpx.Response(200, content=_sse(events))

    engine = _engine(handler)
    chunks = [
        c
        async for c in engine.stream(
            [{"role": "user", "content": "hi"}],
            GenerationParams(max_tokens=2, seed=3, stop=("x",)),
            cache_key="ses_1",
        )
    ]
    await engine.aclose()
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.cached_tokens) == (12, 7)
    assert seen["stream"] is True and seen["seed"] == 3 and seen["stop"] == ["x"]
    assert seen["user"] == "ses_1" and seen["max_tokens"] == 2


async def test_http_error_status_becomes_engine_error_with_detail() -> None:
    engine = _engine(lambda r: httpx.Response(500, text="model exploded"))
    with pytest.raises(EngineError, match="500: model exploded"):
        await engine.complete([{"role": "user", "content": "hi"}], GenerationParams())
    await engine.aclose()


async def test_dead_server_is_a_clear_engine_error_not_a_hang() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = OpenAIEngine(f"http://127.0.0.1:{port}/v1", _counter(), context_window=2048)
    with pytest.raises(EngineError, match="not answering"):
        await engine.discover_model()
    with pytest.raises(EngineError, match=f"127.0.0.1:{port}"):
        await engine.complete([{"role": "user", "content": "hi"}], GenerationParams())
    await engine.aclose()


def test_approx_counter_overcounts_and_is_additive() -> None:
    enc = encoding_from_bpe_vocab(["a", "b", "ab"])
    assert isinstance(enc, tiktoken.Encoding)
    exact = len(enc.encode_ordinary("abab"))
    counter = ApproxCounter(enc, margin=1.5)
    msg = {"role": "user", "content": "abab"}
    assert counter.count_message(msg) >= exact
    assert counter.count([msg, msg]) == counter.count_overhead() + 2 * counter.count_message(msg)
    with pytest.raises(ValueError, match="margin"):
        ApproxCounter(enc, margin=0.9)


# -- a real model server that fails mid-reply (issue 15) -------------------------------------
@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("error", "failed mid-reply: CUDA out of memory"),
        ("drop", "failed"),
        ("eof", "closed the stream before the reply finished"),
    ],
)
async def test_a_mid_stream_failure_is_an_error_after_the_text_so_far(mode: str, says: str) -> None:
    from support.fake_llm import BEFORE_FAULT, TOKENS, FakeModelServer

    with FakeModelServer(mode) as upstream:
        engine = OpenAIEngine(upstream.url, _counter(), context_window=2048, model_id="m")
        got: list[str] = []
        with pytest.raises(EngineError, match=says):
            async for chunk in engine.stream(
                [{"role": "user", "content": "hi"}], GenerationParams()
            ):
                assert chunk.finish_reason is None, "a cut reply must not end as stop"
                got.append(chunk.text)
        await engine.aclose()
    assert "".join(got) == "".join(TOKENS[:BEFORE_FAULT])


async def test_a_whole_reply_from_the_real_fake_server_still_ends_normally() -> None:
    from support.fake_llm import TOKENS, FakeModelServer

    with FakeModelServer("ok") as upstream:
        engine = OpenAIEngine(upstream.url, _counter(), context_window=2048, model_id="m")
        chunks = [
            c async for c in engine.stream([{"role": "user", "content": "hi"}], GenerationParams())
        ]
        await engine.aclose()
    assert "".join(c.text for c in chunks) == "".join(TOKENS)
    assert chunks[-1].finish_reason == "stop"
