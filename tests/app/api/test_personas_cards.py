"""Cards in and out over real HTTP: PNG and JSON card upload (raw body and multipart), a
chosen id, the greeting's macros filled, replace and delete with their 404/409 story, a
deleted persona's sessions, V3 card export (JSON and PNG), World Info in and out, and each
user's uploads invisible to the others."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.card_pngs import card_png, encoded, text
from support.server import REPO, LiveServer, assert_error, make_settings

from app.personas.card_png import read_card_png

FIXTURES = Path(__file__).resolve().parents[1] / "personas" / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


V2, V3 = fixture("card_v2.json"), fixture("card_v3_book.json")
WORLD = fixture("st_world_info.json")
PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("cards"), auth="required", max_body_bytes=500_000
    )
    with LiveServer(settings) as s:
        yield s


@pytest.fixture
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.new_key()[1]) as c:
        yield c


@pytest.fixture
def bob(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.new_key()[1]) as c:
        yield c


def test_png_cards_upload_as_raw_body_or_form_file(alice: httpx.Client) -> None:
    png = card_png(text("chara", encoded(V2)), text("ccv3", encoded(V3)))
    r = alice.post("/v1/personas", content=png, headers=PNG)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"] == "seo-yeon" and made["source"] == "uploaded"  # ccv3 preferred
    assert made["character_book"]["entries"][0]["keys"] == ["dragon", "Ember", "용"]
    assert made["pinned_facts"] == []
    # a multipart form with one file, as a browser or `curl -F file=@card.png` sends it
    r = alice.post(
        "/v1/personas?id=mira-form",
        files={"file": ("mira.png", card_png(text("chara", encoded(V2))), "image/png")},
    )
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "mira-form" and r.json()["name"] == "Captain Mira"
    # a JSON card in a form file works too
    r = alice.post("/v1/personas?id=mira-json", files={"file": ("mira.json", json.dumps(V2))})
    assert r.status_code == 201, r.text
    ids = [p["id"] for p in alice.get("/v1/personas").json()["personas"]]
    assert {"seo-yeon", "mira-form", "mira-json"} <= set(ids)


def test_the_greeting_is_shown_with_its_macros_filled(alice: httpx.Client) -> None:
    r = alice.post("/v1/personas?id=yeon-greets", json=V3)
    assert r.status_code == 201, r.text
    shown = r.json()
    # {{char}} and {{User}} (any case) filled with the persona's and the user's names
    assert (
        shown["greeting"]
        == "*Seo-yeon waves from the roost.* User! You made it before the lanterns."
    )
    assert shown["description"].startswith("Seo-yeon is a dragon keeper")
    assert alice.get("/v1/personas/yeon-greets").json()["greeting"] == shown["greeting"]
    listed = {p["id"]: p for p in alice.get("/v1/personas").json()["personas"]}
    assert "{{" not in listed["yeon-greets"]["description"]
    session = alice.post("/v1/sessions", json={"persona": "yeon-greets"}).json()
    assert session["greeting"] == shown["greeting"]
    # the definition keeps its macros: the card export has them
    card = alice.get("/v1/personas/yeon-greets/card").json()
    assert card["data"]["first_mes"] == V3["data"]["first_mes"]


def test_choosing_an_id_and_the_conflicts(alice: httpx.Client) -> None:
    assert alice.post("/v1/personas?id=captain", json=V2).status_code == 201
    err = assert_error(alice.post("/v1/personas?id=captain", json=V2), 409, "id")
    assert "'captain'" in err["message"] and "PUT /v1/personas/captain" in err["message"]
    err = assert_error(alice.post("/v1/personas?id=pippa", json=V2), 409, "id")
    assert "built-in" in err["message"]
    assert_error(alice.post("/v1/personas?id=Bad%20Id", json=V2), 422, "id")


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (card_png(), PNG, "no character card"),
        (card_png(text("chara", b"@@@@")), PNG, "not valid base64"),
        (card_png(text("ccv3", encoded("{nope"))), PNG, "not valid JSON"),
        (card_png(text("chara", encoded(V2)))[:-30], PNG, "truncated"),
        (b"\xff\xd8\xff\xe0 a jpeg", PNG, "neither a PNG card nor UTF-8"),
        (b"", PNG, "empty body"),
    ],
    ids=["no-chunk", "base64", "json", "truncated", "jpeg", "empty"],
)
def test_bad_uploads_are_422_with_the_reason(
    alice: httpx.Client, body: bytes, headers: dict[str, str], problem: str
) -> None:
    err = assert_error(alice.post("/v1/personas", content=body, headers=headers), 422)
    assert problem in err["message"], err


def test_oversize_uploads(alice: httpx.Client) -> None:
    huge = card_png(text("chara", encoded({"x": "y" * 600_000})))
    assert_error(alice.post("/v1/personas", content=huge, headers=PNG), 413)
    big = card_png(
        text("chara", encoded({**V2, "data": {**V2["data"], "scenario": "z" * 260_000}}))
    )
    err = assert_error(alice.post("/v1/personas", content=big, headers=PNG), 422)
    assert "MEMENTO_MAX_PERSONA_BYTES" in err["message"]
    bad_book = {**V2, "data": {**V2["data"], "character_book": {"entries": [{"keys": "x"}]}}}
    err = assert_error(alice.post("/v1/personas", json=bad_book), 422)
    assert err["field"] == "data.character_book.entries.0.keys"


def test_replace_and_delete_with_their_404_and_409(alice: httpx.Client, bob: httpx.Client) -> None:
    assert alice.post("/v1/personas?id=ship", json=V2).status_code == 201
    r = alice.put("/v1/personas/ship", json=V3)  # any form: here a card under the same id
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "ship" and r.json()["name"] == "Seo-yeon"
    png = card_png(text("chara", encoded(V2)))
    r = alice.put("/v1/personas/ship", content=png, headers=PNG)
    assert r.status_code == 200 and r.json()["name"] == "Captain Mira"
    # bob cannot see, replace, delete or export it: 404, as for an id nobody has
    for method, path in [
        ("PUT", "/v1/personas/ship"),
        ("DELETE", "/v1/personas/ship"),
        ("GET", "/v1/personas/ship/card"),
        ("GET", "/v1/personas/ship/card?format=png"),
        ("GET", "/v1/personas/ship/world-info"),
        ("PUT", "/v1/personas/ship/world-info"),
        ("DELETE", "/v1/personas/ship/world-info"),
    ]:
        body = WORLD if "world-info" in path else V3
        r = bob.request(method, path, json=body if method == "PUT" else None)
        assert_error(r, 404, "persona")
    assert_error(alice.put("/v1/personas/nobody-here", json=V2), 404, "persona")
    assert_error(alice.delete("/v1/personas/nobody-here"), 404, "persona")
    for method in ("PUT", "DELETE"):
        err = assert_error(alice.request(method, "/v1/personas/pippa", json=V2), 409, "id")
        assert "built-in" in err["message"]
    assert_error(alice.put("/v1/personas/ship", json={"name": "x"}), 422)
    assert alice.get("/v1/personas/ship").json()["name"] == "Captain Mira"  # kept
    assert alice.delete("/v1/personas/ship").status_code == 204
    assert_error(alice.get("/v1/personas/ship"), 404, "persona")
    assert alice.post("/v1/personas?id=ship", json=V3).status_code == 201  # id free again


def test_a_deleted_personas_sessions_keep_everything_and_say_how_to_go_on(
    server: LiveServer, alice: httpx.Client
) -> None:
    assert alice.post("/v1/personas?id=gone-soon", json=V2).status_code == 201
    sid = alice.post("/v1/sessions", json={"persona": "gone-soon"}).json()["id"]
    r = alice.post(
        f"/v1/sessions/{sid}/history",
        json={
            "messages": [
                {"role": "user", "content": "Is the dragon friendly?"},
                {"role": "assistant", "content": "Only with apples."},
            ]
        },
    )
    assert r.status_code in (200, 201), r.text
    assert alice.delete("/v1/personas/gone-soon").status_code == 204
    # the session is still readable and exportable, with every message
    session = alice.get(f"/v1/sessions/{sid}")
    assert session.status_code == 200 and session.json()["greeting"] is None
    assert len(alice.get(f"/v1/sessions/{sid}/messages").json()["messages"]) == 2
    assert alice.get(f"/v1/sessions/{sid}/export").status_code == 200
    # a turn says what happened and what to do
    for r in (
        alice.post(f"/v1/sessions/{sid}/messages", json={"content": "hi", "max_tokens": 4}),
        alice.post(f"/v1/sessions/{sid}/context", json={"content": "hi"}),
    ):
        err = assert_error(r, 409, "persona")
        assert "gone-soon" in err["message"] and "POST /v1/personas?id=gone-soon" in err["message"]
    # uploading it again lets the session go on, its messages intact
    assert alice.post("/v1/personas?id=gone-soon", json=V3).status_code == 201
    context = alice.post(f"/v1/sessions/{sid}/context", json={"content": "hi"})
    assert context.status_code == 200, context.text
    assert len(alice.get(f"/v1/sessions/{sid}/messages").json()["messages"]) == 2


def test_card_export_json_and_png_round_trip(alice: httpx.Client) -> None:
    assert alice.post("/v1/personas?id=export-me", json=V3).status_code == 201
    r = alice.get("/v1/personas/export-me/card")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert 'filename="export-me.json"' in r.headers["content-disposition"]
    card = r.json()
    assert card["spec"] == "chara_card_v3" and card["spec_version"] == "3.0"
    assert card["data"]["character_book"] == V3["data"]["character_book"]
    for field in ("alternate_greetings", "group_only_greetings", "tags", "creator", "assets"):
        assert card["data"][field] == V3["data"][field]
    png = alice.get("/v1/personas/export-me/card?format=png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert read_card_png(png.content, "x", 256_000) == card
    # re-import the exported PNG under another id: the same persona, the same export
    r = alice.post("/v1/personas?id=export-again", content=png.content, headers=PNG)
    assert r.status_code == 201, r.text
    again = alice.get("/v1/personas/export-again/card").json()
    card["data"]["extensions"]["memento"]["id"] = "export-again"
    assert again == card
    # a built-in persona exports for anyone
    pippa = alice.get("/v1/personas/pippa/card").json()
    assert pippa["data"]["name"] == "Pippa" and pippa["data"]["first_mes"]
    assert_error(alice.get("/v1/personas/export-me/card?format=gif"), 422, "format")


def test_world_info_in_and_out(alice: httpx.Client) -> None:
    assert alice.post("/v1/personas?id=world", json=V2).status_code == 201
    r = alice.put("/v1/personas/world/world-info", json=WORLD)
    assert r.status_code == 200, r.text
    book = r.json()["character_book"]
    assert [e["id"] for e in book["entries"]] == [0, 1, 5]
    assert book["entries"][1]["extensions"]["selectiveLogic"] == 3
    out = alice.get("/v1/personas/world/world-info")
    assert out.status_code == 200
    assert out.json()["entries"] == WORLD["entries"]
    # a V3 character_book is taken too, by POST as well as PUT
    r = alice.post("/v1/personas/world/world-info", json=V3["data"]["character_book"])
    assert r.status_code == 200 and r.json()["character_book"] == V3["data"]["character_book"]
    err = assert_error(alice.put("/v1/personas/world/world-info", json={"entries": 3}), 422)
    assert err["field"] == "entries"
    assert_error(alice.put("/v1/personas/world/world-info", json={"entries": {}}), 422)
    err = assert_error(alice.put("/v1/personas/pippa/world-info", json=WORLD), 409, "id")
    assert alice.delete("/v1/personas/world/world-info").status_code == 204
    assert alice.get("/v1/personas/world").json()["character_book"] is None
    assert_error(alice.get("/v1/personas/world/world-info"), 404, "character_book")


def test_ids_are_per_user_on_every_new_route(alice: httpx.Client, bob: httpx.Client) -> None:
    assert alice.post("/v1/personas?id=twin", json=V2).status_code == 201
    assert bob.post("/v1/personas?id=twin", json=V3).status_code == 201
    assert bob.delete("/v1/personas/twin").status_code == 204
    assert alice.get("/v1/personas/twin").json()["name"] == "Captain Mira"
    assert alice.get("/v1/personas/twin/card").json()["data"]["name"] == "Captain Mira"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("cards-readme"))) as s:
        yield s


def test_readme_card_examples_run(open_server: LiveServer, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Character cards and lorebooks")
    match = re.compile(r"```sh\n(.*?)```", re.S).search(readme, start)
    assert match is not None
    # verbatim, except that an HTTP error fails the script (curl -f)
    script = match.group(1).replace("localhost:8000", f"127.0.0.1:{open_server.port}")
    script = script.replace("curl -s ", "curl -sf ")
    (tmp_path / "seo-yeon.png").write_bytes(card_png(text("ccv3", encoded(V3))))
    (tmp_path / "mira.json").write_text(json.dumps(V2), encoding="utf-8")
    (tmp_path / "eldoria.json").write_text(json.dumps(WORLD), encoding="utf-8")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "mira.card.json").read_text(encoding="utf-8"))
    assert card["data"]["name"] == "Seo-yeon"  # replaced by the PNG card
    assert [e["id"] for e in card["data"]["character_book"]["entries"]] == [0, 1, 5]
    assert read_card_png((tmp_path / "mira.png").read_bytes(), "png", 256_000) == card
    world = json.loads((tmp_path / "mira-world.json").read_text(encoding="utf-8"))
    assert world["entries"] == WORLD["entries"]
    with open_server.client() as c:
        assert c.get("/v1/personas/mira").status_code == 404
        assert c.get("/v1/personas/seo-yeon").json()["name"] == "Seo-yeon"
