"""MementoChat: LangChain's chat model interface over the real engine."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate

from app.langchain_chat import MementoChat, to_chat_messages

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
