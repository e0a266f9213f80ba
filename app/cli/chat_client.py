"""The HTTP client of `memento chat`: the few calls of the public API (docs/ARCHITECTURE.md
§1.12) it makes, server-sent events parsed from a streamed reply, and API errors as ApiError
carrying the server's own message. No terminal or rendering here: app/cli/chat.py is the REPL
on top.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


class ApiError(Exception):
    """An error answer from the API, carrying its `error.message` (and field)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{message} ({field})" if field else message)
        self.status, self.field = status, field


def error_from(response: httpx.Response) -> ApiError:
    try:
        err = response.json().get("error", {})
        return ApiError(response.status_code, err.get("message") or response.text, err.get("field"))
    except (ValueError, AttributeError):
        return ApiError(response.status_code, response.text or f"HTTP {response.status_code}")


class ChatClient:
    """The few API calls the terminal chat needs, over one httpx connection pool."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.TransportError as e:
            raise ApiError(0, f"cannot reach the server at {self.http.base_url}: {e}") from e
        if response.status_code >= 400:
            raise error_from(response)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def personas(self) -> list[dict[str, Any]]:
        data = self._call("GET", "/v1/personas")
        return data.get("personas", []) if isinstance(data, dict) else data

    def persona(self, persona_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/personas/{persona_id}")

    def strategies(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/strategies")["strategies"]

    def session(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/sessions/{session_id}")

    def create_session(self, persona: str | None, strategy: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if persona:
            body["persona"] = persona
        if strategy:
            body["memory"] = {"strategy": strategy}
        return self._call("POST", "/v1/sessions", body)

    def messages(self, session_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return self._call("GET", f"/v1/sessions/{session_id}/messages?limit={limit}")["messages"]

    def context(self, session_id: str, message_id: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/sessions/{session_id}/context/{message_id}")

    def memory(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/sessions/{session_id}/memory")

    def draft(self, session_id: str, content: str, max_tokens: int | None) -> dict[str, Any]:
        """Tell the server what is being typed (it prefills the next prompt with it)."""
        body: dict[str, Any] = {"content": content}
        if max_tokens:
            body["max_tokens"] = max_tokens
        return self._call("PUT", f"/v1/sessions/{session_id}/draft", body)

    def stream(self, session_id: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """POST a message with stream=true; yield (event, data) server-sent events."""
        try:
            with self.http.stream(
                "POST", f"/v1/sessions/{session_id}/messages", json={**body, "stream": True}
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                yield from parse_sse(response.iter_lines())
        except httpx.TransportError as e:
            raise ApiError(0, f"the connection to the server broke: {e}") from e


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """Server-sent events from text lines: (event name, JSON-decoded data or the raw text)."""
    data: list[str]
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, _decode("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield event, _decode("\n".join(data))


def _decode(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def delta_text(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        return str(data.get("text") or data.get("delta") or data.get("content") or "")
    return str(data)
