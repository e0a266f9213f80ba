"""MementoChat: LangChain's chat model interface over the real engine."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate

from app.integrations.langchain import MementoChat, to_chat_messages
from app.llm.types import EngineError

FRANCE = [HumanMessage("What is the capital of France?")]


@pytest.fixture(scope="module")
def llm(engine: Any) -> MementoChat:
    return MementoChat(engine=engine, max_tokens=12)


def test_invoke_and_stream_agree(llm: MementoChat) -> None:
    out = llm.invoke(FRANCE)
    assert isinstance(out, AIMessage) and "Paris" in out.content
    assert out.response_metadata["finish_reason"] in ("stop", "length")
    usage = out.usage_metadata
    assert usage is not None and 0 < usage["output_tokens"] <= 12
    assert usage["input_tokens"] == llm.get_num_tokens_from_messages(FRANCE)
    pieces = list(llm.stream(FRANCE))
    assert len(pieces) > 1
    assert "".join(p.content for p in pieces) == out.content


async def test_async_invoke_and_stream(llm: MementoChat) -> None:
    out = await llm.ainvoke(FRANCE)
    assert "Paris" in out.content
    pieces = [p.content async for p in llm.astream(FRANCE)]
    assert "".join(pieces) == out.content


def test_token_count_is_the_engines_exact_count(llm: MementoChat, engine: Any) -> None:
    msgs = [
        SystemMessage("You are terse."),
        HumanMessage("Hi"),
        AIMessage("Hello."),
        HumanMessage("안녕, 아빠! 🎉"),
    ]
    expected = engine.count(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "안녕, 아빠! 🎉"},
        ]
    )
    assert llm.get_num_tokens_from_messages(msgs) == expected
    assert llm.get_num_tokens("hello world") == len(engine.tokenizer.encode("hello world"))


def test_in_a_chain_with_stop_and_params(llm: MementoChat) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "What is the capital of {country}?")])
    chain = prompt | llm.bind(stop=["Paris"])
    out = chain.invoke({"country": "France"})
    assert "Paris" not in out.content
    full = (prompt | llm).invoke({"country": "France"})
    assert full.content.startswith(out.content)


def test_unsupported_messages_are_named() -> None:
    with pytest.raises(ValueError, match="message 1: ToolMessage"):
        to_chat_messages([HumanMessage("x"), ToolMessage("y", tool_call_id="1")])


def test_timeout_bounds_the_whole_call(engine: Any) -> None:
    # a deadline already spent: the first step (the prefill) cannot be waited for
    llm = MementoChat(engine=engine, max_tokens=12, timeout=1e-9)
    with pytest.raises(TimeoutError):
        llm.invoke(FRANCE)


class _FlakyEngine:
    """The real engine behind an engine that fails `failures` times before its first token,
    as a remote engine does while its server restarts."""

    def __init__(self, engine: Any, failures: int) -> None:
        self.engine, self.failures, self.calls = engine, failures, 0
        self.model_id = engine.model_id

    async def stream(self, messages: Any, params: Any, cache_key: str | None = None) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise EngineError("connection refused")
        async for chunk in self.engine.stream(messages, params, cache_key=cache_key):
            yield chunk


def test_max_retries_retries_a_failure_before_the_first_token(engine: Any) -> None:
    flaky = _FlakyEngine(engine, failures=2)
    out = MementoChat(engine=flaky, max_tokens=12, max_retries=2).invoke(FRANCE)
    assert "Paris" in out.content and flaky.calls == 3
    with pytest.raises(EngineError):
        MementoChat(engine=_FlakyEngine(engine, failures=1), max_tokens=12).invoke(FRANCE)


def test_standard_tracing_params(engine: Any) -> None:
    llm = MementoChat(engine=engine, max_tokens=7, temperature=0.5, stop=["x"])
    params = llm._get_ls_params()
    assert params["ls_provider"] == "memento" and params["ls_model_name"] == engine.model_id
    assert (params["ls_max_tokens"], params["ls_temperature"], params["ls_stop"]) == (7, 0.5, ["x"])
    assert llm._get_ls_params(model="other")["ls_model_name"] == "other"
