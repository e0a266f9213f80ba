"""Character cards inside PNG files, read and written with the standard library.

A card PNG is an ordinary image whose text chunk holds the card JSON, base64-encoded: keyword
`chara` for V1/V2 cards, `ccv3` for V3 (writers add both, so older readers still find a V2
card). We read tEXt, and zTXt/iTXt too (some editors compress), prefer `ccv3` when both are
there, and check every chunk's CRC: a damaged file says so instead of importing garbage.

The image itself is not kept: a persona has no avatar, and avatars (often megabytes) would
crowd the persona size limit. Export draws a small image instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from app.personas.errors import PersonaError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")  # preference order
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_IMAGE_SIDE = 64


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def read_card_png(data: bytes, source: str, max_bytes: int) -> dict[str, Any]:
    """The card JSON a PNG carries. PersonaError for anything that is not a readable card PNG:
    not a PNG, a truncated or corrupt file, no card chunk, bad base64, bad JSON, or a card
    over `max_bytes` (the persona size limit, checked before decoding and after inflating)."""
    if not is_png(data):
        raise PersonaError(source, None, "not a PNG file (it does not start with the signature)")
    found: dict[str, bytes] = {}
    for kind, body in _chunks(data, source):
        if kind not in _TEXT_CHUNKS:
            continue
        name, text = _text_of(kind, body, source, max_bytes)
        if name in CARD_KEYWORDS and name not in found:
            found[name] = text
    keyword = next((k for k in CARD_KEYWORDS if k in found), None)
    if keyword is None:
        raise PersonaError(
            source,
            None,
            "this PNG holds no character card (no `chara` or `ccv3` text chunk); "
            "export the card again from the tool that made it",
        )
    encoded = found[keyword]
    # base64 is 4/3 of the JSON: refuse before decoding what cannot fit
    if len(encoded) * 3 // 4 > max_bytes:
        raise PersonaError(
            source,
            keyword,
            f"the card is over the {max_bytes}-byte limit (MEMENTO_MAX_PERSONA_BYTES)",
        )
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PersonaError(source, keyword, "the card chunk is not valid base64") from None
    try:
        card = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise PersonaError(source, keyword, f"the card is not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise PersonaError(
            source, keyword, f"the card is not valid JSON (line {e.lineno}: {e.msg})"
        ) from None
    if not isinstance(card, dict):
        raise PersonaError(source, keyword, "the card must be a JSON object")
    return card


def write_card_png(chunks: dict[str, dict[str, Any]], label: str) -> bytes:
    """A small PNG carrying each card JSON of `chunks` (keyword -> card) base64 in a tEXt
    chunk. The image is a flat colour picked from `label` (the name), so cards differ."""
    r, g, b = hashlib.sha256(label.encode("utf-8")).digest()[:3]
    row = b"\x00" + bytes((r, g, b)) * _IMAGE_SIDE  # filter type 0, then RGB pixels
    ihdr = struct.pack(">IIBBBBB", _IMAGE_SIDE, _IMAGE_SIDE, 8, 2, 0, 0, 0)
    out = [PNG_SIGNATURE, _chunk(b"IHDR", ihdr)]
    for keyword, card in chunks.items():
        payload = base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))
        out.append(_chunk(b"tEXt", keyword.encode("latin-1") + b"\x00" + payload))
    out.append(_chunk(b"IDAT", zlib.compress(row * _IMAGE_SIDE, 9)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _chunks(data: bytes, source: str) -> Iterator[tuple[bytes, bytes]]:
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise PersonaError(source, None, "the PNG is truncated (a chunk header is cut off)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            raise PersonaError(
                source, None, f"the PNG is truncated (chunk {kind.decode('latin-1')!r} is cut off)"
            )
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PersonaError(
                source, None, f"the PNG is damaged (bad CRC in chunk {kind.decode('latin-1')!r})"
            )
        yield kind, body
        if kind == b"IEND":
            return
        pos = end
    raise PersonaError(source, None, "the PNG is truncated (no IEND chunk)")


def _text_of(kind: bytes, body: bytes, source: str, max_bytes: int) -> tuple[str, bytes]:
    """(keyword, text bytes) of a tEXt, zTXt or iTXt chunk; the keyword lower-cased."""
    keyword, sep, rest = body.partition(b"\x00")
    name = keyword.decode("latin-1").lower()
    if not sep or name not in CARD_KEYWORDS:
        return name, b""
    if kind == b"tEXt":
        return name, rest
    if kind == b"zTXt":  # compression method byte (0 = zlib), then the compressed text
        return name, _inflate(rest[1:], source, name, max_bytes)
    # iTXt: compression flag, method, language tag \0, translated keyword \0, text
    if len(rest) < 2:
        raise PersonaError(source, name, "the iTXt chunk is truncated")
    compressed, text = rest[0], rest[2:]
    _, _, text = text.partition(b"\x00")
    _, _, text = text.partition(b"\x00")
    return name, _inflate(text, source, name, max_bytes) if compressed else text


def _inflate(data: bytes, source: str, name: str, max_bytes: int) -> bytes:
    # bounded: a few kilobytes of zlib can inflate to gigabytes
    limit = max_bytes * 4 // 3 + 16
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise PersonaError(source, name, "the compressed card chunk is corrupt") from None
    if len(out) > limit:
        raise PersonaError(
            source, name, f"the card is over the {max_bytes}-byte limit (MEMENTO_MAX_PERSONA_BYTES)"
        )
    return out
