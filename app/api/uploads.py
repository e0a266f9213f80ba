"""Reading a persona or card upload off a request: JSON, YAML or text, a card PNG sent as the
raw body (`image/png` or `application/octet-stream`), or a file in a `multipart/form-data`
form (what a browser's file input and `curl -F file=@card.png` send, as SillyTavern's own
importer takes cards). Multipart is parsed with the standard library's email parser: the
one-file forms we take need nothing more, and python-multipart is not a dependency.
"""

from __future__ import annotations

import json
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fastapi import Request

from app.errors import InvalidFieldError
from app.personas.card_png import is_png

UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "our persona form as JSON or YAML, a Character Card V1/V2/V3 as JSON, "
        "or a card PNG (raw `image/png` body, or a multipart form with one file)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


async def read_upload(request: Request) -> str | bytes | dict[str, Any]:
    """The upload as text, PNG bytes, or a decoded JSON object. 422 (field `body`) for an
    empty body, a form without a file, undecodable text, or invalid JSON."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        raw = _form_file(raw, content_type)
    if is_png(raw):
        return raw  # whatever the content type said: the signature decides
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFieldError(
            f"the body is neither a PNG card nor UTF-8 text (byte {exc.start})", "body"
        ) from None
    if not text.strip():
        raise InvalidFieldError("empty body: send a persona (YAML/JSON) or a card", "body")
    if "json" in content_type or (content_type.startswith("multipart/") and _looks_json(text)):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidFieldError(
                f"invalid JSON at line {exc.lineno}: {exc.msg}", "body"
            ) from None
        return body if isinstance(body, dict) else text
    return text


def _form_file(raw: bytes, content_type: str) -> bytes:
    """The first file of a multipart form (or its only field)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    parts: list[Message] = [p for p in message.iter_parts()] if message.is_multipart() else []
    files = [p for p in parts if p.get_filename()] or parts
    if not files:
        raise InvalidFieldError(
            "the form holds no file: send the card as a file field (curl -F file=@card.png)",
            "body",
        )
    payload = files[0].get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _looks_json(text: str) -> bool:
    return text.lstrip().startswith("{")
