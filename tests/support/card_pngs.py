"""Card PNGs for tests, built by hand (struct + zlib), the way card editors write them."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from app.personas.card_png import PNG_SIGNATURE


def chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def encoded(card: dict[str, Any] | str) -> bytes:
    text = card if isinstance(card, str) else json.dumps(card, ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8"))


def card_png(*text_chunks: bytes, image: bool = True) -> bytes:
    """A 1x1 grey PNG with the given text chunks before its image data."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x80")) if image else b""
    return PNG_SIGNATURE + ihdr + b"".join(text_chunks) + idat + chunk(b"IEND", b"")


def text(keyword: str, payload: bytes) -> bytes:
    return chunk(b"tEXt", keyword.encode("latin-1") + b"\x00" + payload)


def ztext(keyword: str, payload: bytes) -> bytes:
    return chunk(b"zTXt", keyword.encode("latin-1") + b"\x00\x00" + zlib.compress(payload))


def itext(keyword: str, payload: bytes, compressed: bool = False) -> bytes:
    body = zlib.compress(payload) if compressed else payload
    flag = b"\x01\x00" if compressed else b"\x00\x00"
    return chunk(b"iTXt", keyword.encode("latin-1") + b"\x00" + flag + b"en\x00\x00" + body)
