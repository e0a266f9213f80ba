"""The official `openai` client and LangChain's ChatOpenAI against a real server (uvicorn on a
free port), streaming and not, with and without X-Memento-Session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from support.server import LiveServer, make_settings

MAX = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("openai"))) as s:
        yield s


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def new_session(server: LiveServer, persona: str = "assistant") -> str:
    r = httpx.post(f"{server.url}/v1/sessions", json={"persona": persona}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def stored(server: LiveServer, sid: str) -> list[dict]:
    return httpx.get(f"{server.url}/v1/sessions/{sid}/messages", timeout=60).json()["messages"]


def test_models(oai: OpenAI) -> None:
    models = oai.models.list().data
    assert len(models) == 1 and "SmolLM2" in models[0].id


def test_stateless_completion(oai: OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    r = oai.chat.completions.create(
        model="anything", messages=messages, max_tokens=MAX, temperature=0
    )
    assert r.object == "chat.completion"
    choice = r.choices[0]
    assert choice.message.role == "assistant" and "Paris" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u is not None and 0 < u.completion_tokens <= MAX
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details is not None
    # same request again: the whole prompt prefix is reused from the KV cache
    again = oai.chat.completions.create(
        model="anything", messages=messages, max_tokens=MAX, temperature=0
    )
    assert again.choices[0].message.content == choice.message.content
    assert again.usage.prompt_tokens_details.cached_tokens > 0


def test_stateless_streaming(oai: OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=MAX,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_session_header_uses_memory_and_stores_turns(server: LiveServer, oai: OpenAI) -> None:
    sid = new_session(server, "pippa")
    headers = {"X-Memento-Session": sid}
    first = oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Hi Pippa, my favourite fruit is mango."}],
        max_tokens=MAX,
        extra_headers=headers,
    )
    # the client sends only its newest message; the session supplies the rest
    raw = oai.chat.completions.with_raw_response.create(
        model="m",
        messages=[
            {"role": "user", "content": "ignored: the client's own copy of history"},
            {"role": "user", "content": "What is my favourite fruit?"},
        ],
        max_tokens=MAX,
        extra_headers=headers,
    )
    second = raw.parse()
    reply_id = int(raw.headers["x-memento-reply-id"])
    msgs = stored(server, sid)
    assert [m["content"] for m in msgs if m["role"] == "user"] == [
        "Hi Pippa, my favourite fruit is mango.",
        "What is my favourite fruit?",
    ]
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == [
        first.choices[0].message.content,
        second.choices[0].message.content,
    ]
    assert msgs[-1]["id"] == reply_id
    ctx = httpx.get(f"{server.url}/v1/sessions/{sid}/context/{reply_id}", timeout=60).json()
    text = [m["content"] for p in ctx["parts"] for m in p["messages"]]
    assert "Hi Pippa, my favourite fruit is mango." in text
    assert "ignored: the client's own copy of history" not in text
    assert second.usage.prompt_tokens == ctx["total_tokens"]
    assert second.usage.prompt_tokens_details.cached_tokens > 0


def test_session_header_streaming(server: LiveServer, oai: OpenAI) -> None:
    sid = new_session(server)
    stream = oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=MAX,
        stream=True,
        extra_headers={"X-Memento-Session": sid},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    msgs = stored(server, sid)
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[1]["content"] == text and msgs[1]["status"] == "complete"


def test_langchain_chat_openai(server: LiveServer) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key="unused",
        model="memento",
        max_tokens=MAX,
        temperature=0,
        max_retries=0,
    )
    msgs = [HumanMessage("What is the capital of France?")]
    out = llm.invoke(msgs)
    assert "Paris" in out.content
    assert out.usage_metadata is not None and out.usage_metadata["output_tokens"] > 0
    pieces = [c.content for c in llm.stream(msgs)]
    assert "".join(pieces) == out.content

    sid = new_session(server)
    session_llm = llm.bind(extra_headers={"X-Memento-Session": sid})
    reply = session_llm.invoke([HumanMessage("Hello there")])
    assert stored(server, sid)[-1]["content"] == reply.content
