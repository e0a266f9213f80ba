"""LangChain's own standard test suites (the `langchain-tests` package, issue 17): the unit
suite for MementoChat over the real engine, and the integration suite for LangChain's
ChatOpenAI pointed at a local Memento server (no network; slow: ~40 generations).

Capabilities Memento does not have (tool calling, structured output, JSON mode, images, audio,
PDFs) are declared off, so the suite skips those tests rather than expecting them; the server
refuses those requests with a 400 naming the param (see test_openai_compat.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from support.server import LiveServer, make_settings

from app.integrations.langchain import MementoChat

# The suites read their constructor params from class properties, which cannot take fixtures:
# module fixtures put the shared engine and the server's URL here first.
_ENV: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _shared_engine(engine: Any) -> None:
    _ENV["engine"] = engine


class TestMementoChatUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return MementoChat

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"engine": _ENV["engine"]}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # the suite adds api_key="test" for unit tests: MementoChat has no key (the engine is
        # local, or a remote engine holds its own), and unknown arguments raise
        params = dict(super().standard_chat_model_params)
        params.pop("api_key", None)
        return params


def test_unknown_constructor_arguments_raise(engine: Any) -> None:
    with pytest.raises(ValueError, match="max_token"):
        MementoChat(engine=engine, max_token=5)


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("lc-std"))) as s:
        _ENV["url"] = f"{s.url}/v1"
        _ENV["model_id"] = httpx.get(f"{s.url}/v1/models", timeout=60).json()["data"][0]["id"]
        yield s


@pytest.mark.slow
@pytest.mark.usefixtures("_server")
class TestChatOpenAIAgainstMemento(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "memento",
            "base_url": _ENV["url"],
            "api_key": "unused",
            # ChatOpenAI asks for streamed usage only from api.openai.com unless told to
            "stream_usage": True,
            # short replies keep the suite's ~60 generations affordable on 2 shared cores; JSON
            # replies still complete (the last tokens of the budget close them)
            "max_tokens": 48,
            # a client per model: langchain-openai caches one async client per base URL, and
            # pytest-asyncio closes each test's event loop under it
            "http_async_client": httpx.AsyncClient(timeout=300),
        }

    @property
    def model_override_value(self) -> str:
        return str(_ENV["model_id"])  # the served model's own id, beside the alias

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return True  # response_format json_schema, by constrained decoding

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "json_schema"}  # not function calling: tools are refused

    @property
    def supports_json_mode(self) -> bool:
        # the JSON is always valid, but this test also wants the exact keys "setup" and
        # "punchline" from a prompt alone (no schema): a 135M model's choice, not ours
        return False

    @pytest.mark.xfail(
        reason="langchain-openai sends pydantic.v1 schemas as a tool, not a response_format, "
        "and Memento refuses tools with a 400",
        raises=openai.BadRequestError,
        strict=True,
    )
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False
