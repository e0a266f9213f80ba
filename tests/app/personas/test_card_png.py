"""Character cards in PNG files: the chunk forms editors write, and every way a file fails."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from support.card_pngs import card_png, chunk, encoded, itext, text, ztext

from app.personas.card_export import persona_to_png
from app.personas.card_png import PNG_SIGNATURE, read_card_png, write_card_png
from app.personas.cards import card_to_persona
from app.personas.errors import PersonaError
from app.personas.loader import parse_persona_upload

FIXTURES = Path(__file__).parent / "fixtures"
LIMIT = 256_000


def _card(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


V2, V3 = _card("card_v2.json"), _card("card_v3_book.json")


@pytest.mark.parametrize(
    "make",
    [
        lambda c: text("chara", encoded(c)),
        lambda c: text("Chara", encoded(c)),  # some writers capitalize the keyword
        lambda c: ztext("chara", encoded(c)),
        lambda c: itext("chara", encoded(c)),
        lambda c: itext("chara", encoded(c), compressed=True),
    ],
    ids=["tEXt", "tEXt-capital", "zTXt", "iTXt", "iTXt-compressed"],
)
def test_a_v2_card_reads_from_every_text_chunk_form(make: Any) -> None:
    assert read_card_png(card_png(make(V2)), "x.png", LIMIT) == V2


def test_ccv3_is_preferred_over_chara_whatever_the_order() -> None:
    for chunks in [
        (text("chara", encoded(V2)), text("ccv3", encoded(V3))),
        (text("ccv3", encoded(V3)), text("chara", encoded(V2))),
    ]:
        assert read_card_png(card_png(*chunks), "x.png", LIMIT) == V3
    # other text chunks (a comment, the software tag) are ignored
    png = card_png(text("Software", b"Editor 1.0"), text("chara", encoded(V2)))
    assert read_card_png(png, "x.png", LIMIT)["data"]["name"] == "Captain Mira"


def test_a_v1_card_in_a_png_imports() -> None:
    v1 = {"name": "Tiny", "description": "<BOT> is small.", "first_mes": "Hi <USER>."}
    persona, fmt = parse_persona_upload(card_png(text("chara", encoded(v1))), "tiny.png")
    assert fmt == "card" and persona.greeting == "Hi {{user}}."


def test_an_exported_png_is_a_valid_png_with_both_chunks() -> None:
    persona = card_to_persona(V3)
    png = persona_to_png(persona)
    assert png.startswith(PNG_SIGNATURE)
    pos, kinds, texts = 8, [], {}
    while pos < len(png):  # every chunk's CRC checks out, IHDR first and IEND last
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])[0] == (
            zlib.crc32(kind + body) & 0xFFFFFFFF
        )
        kinds.append(kind)
        if kind == b"tEXt":
            keyword, _, payload = body.partition(b"\x00")
            texts[keyword] = json.loads(base64.b64decode(payload))
        if kind == b"IHDR":
            assert struct.unpack(">II", body[:8]) == (64, 64)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    assert sorted(texts) == [b"ccv3", b"chara"]
    v3 = read_card_png(png, "x.png", LIMIT)
    assert v3 == texts[b"ccv3"] and v3["spec"] == "chara_card_v3"
    assert v3["data"]["character_book"] == persona.character_book
    # the chara chunk is a V2 card (V3-only fields out, V1 fields on top) for older readers
    v2 = texts[b"chara"]
    assert v2["spec"] == "chara_card_v2" and v2["spec_version"] == "2.0"
    assert "group_only_greetings" not in v2["data"] and "assets" not in v2["data"]
    assert v2["name"] == v2["data"]["name"] == "Seo-yeon"
    assert v2["first_mes"] == v3["data"]["first_mes"]
    assert v2["data"]["character_book"] == persona.character_book


def test_write_card_png_round_trips_through_read() -> None:
    png = write_card_png({"chara": {"a": "ü"}, "ccv3": {"b": "용"}}, "label")
    assert read_card_png(png, "x", LIMIT) == {"b": "용"}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GIF89a not a png", "not a PNG file"),
        (b"", "not a PNG file"),
        (card_png(), "holds no character card"),
        (card_png(text("comment", encoded(V2))), "holds no character card"),
        (card_png(text("chara", b"!!!not base64!!!")), "not valid base64"),
        (card_png(text("chara", encoded("{oops"))), "not valid JSON (line 1"),
        (card_png(text("chara", encoded("[1, 2]"))), "must be a JSON object"),
        (card_png(text("chara", b"/w==")), "not UTF-8"),
        (card_png(text("chara", encoded(V2)))[:-20], "truncated"),
        (PNG_SIGNATURE + chunk(b"IHDR", b"x" * 13), "no IEND"),
        (card_png(ztext("chara", b"x" * (LIMIT * 2))), "over the 256000-byte limit"),
        (card_png(text("chara", b"QUFB" * LIMIT)), "over the 256000-byte limit"),
    ],
    ids=[
        "gif",
        "empty",
        "no-text",
        "other-keyword",
        "bad-base64",
        "bad-json",
        "json-array",
        "not-utf8",
        "truncated",
        "no-iend",
        "zlib-bomb",
        "oversize",
    ],
)
def test_broken_pngs_say_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(PersonaError) as e:
        read_card_png(data, "card.png", LIMIT)
    assert problem in e.value.problem, e.value.problem
    assert str(e.value).startswith("card.png")


def test_a_damaged_chunk_fails_its_crc() -> None:
    png = bytearray(card_png(text("chara", encoded(V2))))
    png[60] ^= 0xFF  # inside the text chunk
    with pytest.raises(PersonaError, match="bad CRC"):
        read_card_png(bytes(png), "card.png", LIMIT)


def test_bytes_that_are_neither_png_nor_text() -> None:
    with pytest.raises(PersonaError, match="neither a PNG card nor UTF-8"):
        parse_persona_upload(b"\xff\xfe\x00junk", "upload")
