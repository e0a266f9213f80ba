"""The official `openai` client and LangChain's ChatOpenAI against a real server (uvicorn on a
free port), streaming and not, with and without X-Memento-Session."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI
from support.server import LiveServer, make_settings

from app.llm.mlx_engine import MLXEngine

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
    ids = [m.id for m in models]
    # the served model under its own id, and the alias that always names it
    assert len(ids) == 2 and "SmolLM2" in ids[0] and ids[1] == "memento"
    for model_id in ids:
        assert oai.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError) as info:
        oai.models.retrieve("gpt-4o")
    # as OpenAI's: no param; our `field` names it
    assert info.value.code == "model_not_found" and info.value.param is None
    assert info.value.type == "invalid_request_error"
    assert info.value.body["field"] == "model"
    # a completion for a model we do not serve is refused the same way, not served silently
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "model_not_found" and "gpt-4o" in info.value.message
    real = oai.chat.completions.create(
        model=ids[0], messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert real.model == ids[0]


def test_stateless_completion(oai: OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    r = oai.chat.completions.create(
        model="memento", messages=messages, max_tokens=MAX, temperature=0
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
        model="memento", messages=messages, max_tokens=MAX, temperature=0
    )
    assert again.choices[0].message.content == choice.message.content
    assert again.usage.prompt_tokens_details.cached_tokens > 0


def test_logit_bias_bans_and_forces_tokens(oai: OpenAI, engine: MLXEngine) -> None:
    """OpenAI's `logit_bias` (token ids of the served model: its tokenizer is the embedded
    engine's): -100 bans a token, +100 makes it the only choice."""
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    tok = engine.tokenizer
    paris = {str(i): -100 for word in ("Paris", " Paris") for i in tok.encode(word)[:1]}
    r = oai.chat.completions.create(
        model="memento", messages=ask, max_tokens=MAX, temperature=0, logit_bias=paris
    )
    assert "Paris" not in (r.choices[0].message.content or "")
    mochi = tok.encode(" Mochi")[0]
    r = oai.chat.completions.create(
        model="memento", messages=ask, max_tokens=2, temperature=0, logit_bias={str(mochi): 100}
    )
    assert r.choices[0].message.content == tok.decode([mochi, mochi])


def test_stateless_streaming(oai: OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="memento",
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
        model="memento",
        messages=[{"role": "user", "content": "Hi Pippa, my favourite fruit is mango."}],
        max_tokens=MAX,
        extra_headers=headers,
    )
    # the client sends only its newest message; the session supplies the rest
    raw = oai.chat.completions.with_raw_response.create(
        model="memento",
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
        model="memento",
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


HI = [{"role": "user", "content": "hi"}]

# (request options, the param OpenAI's error names): each is a 400 BadRequestError with
# .type "invalid_request_error" and that .param, as the real API answers (issue 17).
BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"temperature": 3}, "temperature"),
    ({"n": 2}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"max_tokens": 5, "max_completion_tokens": 5}, "max_tokens"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
            }
        },
        "response_format.json_schema.schema",
    ),
    (
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ]
        },
        "tools",
    ),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"logit_bias": {"abc": 5}}, "logit_bias.abc"),
    ({"logit_bias": {"-3": 5}}, "logit_bias.-3"),
    ({"logit_bias": {"49152": 5}}, "logit_bias[49152]"),  # SmolLM2's vocabulary is 0-49151
    ({"logit_bias": {"42": 100.5}}, "logit_bias[42]"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
    ({"max_tokens": 10_000}, "max_tokens"),
]


@pytest.mark.parametrize(("options", "param"), BAD_REQUESTS, ids=[p for _, p in BAD_REQUESTS])
def test_bad_requests_raise_openais_exceptions(
    oai: OpenAI, options: dict[str, Any], param: str
) -> None:
    body = {"model": "memento", "messages": HI, **options}
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(**body)
    err = info.value
    assert err.status_code == 400 and err.type == "invalid_request_error", err.body
    assert err.param == param, err.body
    assert err.message and param.split("[")[0].split(".")[0] in err.message, err.body


def test_refused_options_store_nothing_on_a_session(server: LiveServer, oai: OpenAI) -> None:
    sid = new_session(server)
    for options in (
        {"tools": []},
        {"logprobs": True},
        {"response_format": {"type": "json_object"}},
    ):
        with pytest.raises(openai.BadRequestError) as info:
            oai.chat.completions.create(
                model="memento",
                messages=HI,
                max_tokens=2,
                extra_headers={"X-Memento-Session": sid},
                **options,
            )
        assert info.value.param == next(iter(options))
    assert stored(server, sid) == []


def test_bodies_that_are_not_json_say_why(server: LiveServer) -> None:
    url = f"{server.url}/v1/chat/completions"
    r = httpx.post(url, content=b'{"messages": [\n  {"role": "user", "content": hi}]}', timeout=60)
    assert r.status_code == 400
    err = r.json()["error"]
    # no content-type: the header is named before the JSON is even looked at
    assert err["param"] == "content-type" and "Content-Type: application/json" in err["message"]
    r = httpx.post(
        url,
        content=b'{"messages": [\n  {"role": "user", "content": hi}]}',
        headers={"content-type": "application/json"},
        timeout=60,
    )
    err = r.json()["error"]
    assert r.status_code == 400 and err["param"] == "body"
    assert "line 2, column 31" in err["message"], err


def test_logprobs(oai: OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    r = oai.chat.completions.create(
        model="memento",
        messages=messages,
        max_tokens=MAX,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    tokens = choice.logprobs.content
    assert len(tokens) == r.usage.completion_tokens or choice.finish_reason == "stop"
    # the tokens' bytes spell the reply
    assert b"".join(bytes(t.bytes) for t in tokens).decode() == choice.message.content
    for t in tokens:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        tops = [a.logprob for a in t.top_logprobs]
        assert tops == sorted(tops, reverse=True) and sum(math.exp(p) for p in tops) <= 1 + 1e-4
        # greedy without penalties: the sampled token is the most likely one
        assert t.top_logprobs[0].token == t.token
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob, abs=1e-4)
    # streaming reports the same tokens, chunk by chunk; without logprobs, none
    stream = oai.chat.completions.create(
        model="memento",
        messages=messages,
        max_tokens=MAX,
        temperature=0,
        stream=True,
        logprobs=True,
    )
    streamed = [
        t
        for c in stream
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content
    ]
    assert [t.token for t in streamed] == [t.token for t in tokens]
    # (a prefix reused from the KV cache may differ in the last bits)
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in tokens], abs=1e-3)
    assert all(t.top_logprobs == [] for t in streamed)
    plain = oai.chat.completions.create(
        model="memento", messages=messages, max_tokens=MAX, temperature=0
    )
    assert plain.choices[0].logprobs is None
    assert plain.choices[0].message.content == choice.message.content


CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "country": {"type": "string", "maxLength": 24},
        "population": {"type": "integer", "minimum": 0, "maximum": 100_000_000},
    },
    "required": ["city", "country", "population"],
    "additionalProperties": False,
}


def test_json_mode_and_json_schema(oai: OpenAI) -> None:
    ask = [{"role": "user", "content": "Describe Paris as a JSON object."}]
    r = oai.chat.completions.create(
        model="memento", messages=ask, max_tokens=128, response_format={"type": "json_object"}
    )
    choice = r.choices[0]
    # constrained decoding: whatever the model wanted to say, it is a JSON object
    assert choice.finish_reason == "stop", choice
    assert isinstance(json.loads(choice.message.content), dict)
    # a schema with bounded strings and numbers always completes within the budget
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}
    stream = oai.chat.completions.create(
        model="memento",
        messages=[{"role": "user", "content": "What is the biggest city in Japan?"}],
        max_tokens=96,
        response_format=fmt,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), CITY)


@pytest.mark.parametrize("max_tokens", [2, 6, 12])
def test_json_mode_closes_within_a_small_budget(oai: OpenAI, max_tokens: int) -> None:
    # the last tokens of the budget close the JSON instead of running out inside a string
    r = oai.chat.completions.create(
        model="memento",
        messages=[{"role": "user", "content": "Write a long JSON document about the sea."}],
        max_tokens=max_tokens,
        response_format={"type": "json_object"},
    )
    choice = r.choices[0]
    assert isinstance(json.loads(choice.message.content), dict), choice
    assert r.usage.completion_tokens <= max_tokens


JOKE = {
    "type": "object",
    "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
    "required": ["setup", "punchline"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("max_tokens", [16, 40])
def test_json_schema_required_properties_complete_within_the_budget(
    oai: OpenAI, max_tokens: int
) -> None:
    # the model fills "setup" with a long, repetitive string; the second required key (forced,
    # several tokens) and its value must still fit: closing is planned on the grammar state
    r = oai.chat.completions.create(
        model="memento",
        messages=[{"role": "user", "content": "Tell me a joke about cats."}],
        max_tokens=max_tokens,
        response_format={"type": "json_schema", "json_schema": {"name": "joke", "schema": JOKE}},
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), JOKE)
    assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens <= max_tokens
