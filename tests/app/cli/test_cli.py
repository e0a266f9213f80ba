"""The `memento` command: personas list/show/validate/import, serve's guards, generate, serve."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from support.card_pngs import card_png, encoded, text

from app.cli import build_parser, main
from app.cli.serve import is_loopback
from app.personas.loader import load_persona_file

REPO = Path(__file__).resolve().parents[3]
PERSONAS = REPO / "personas"
MEMENTO = Path(sys.executable).parent / "memento"


@pytest.fixture(autouse=True)
def personas_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMENTO_PERSONAS_DIR", str(PERSONAS))
    monkeypatch.setenv("MEMENTO_DATA_DIR", str(tmp_path / "data"))


def test_personas_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["personas", "list"]) == 0
    listed = capsys.readouterr().out
    for pid in ("assistant", "pippa", "cody"):
        assert pid in listed
    assert main(["personas", "show", "pippa"]) == 0
    shown = capsys.readouterr().out
    assert "system prompt as the model sees it" in shown and "반말" in shown
    # `memento personas show pippa > p.yaml` gives a file that parses back to the persona
    # (it did not: long values wrapped at 80 columns, and the prompt after the YAML)
    from app.personas.loader import load_personas

    assert yaml.safe_load(shown) == load_personas(PERSONAS)["pippa"].model_dump()
    assert main(["personas", "show", "nobody"]) == 1


def test_personas_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["personas", "validate"]) == 0
    assert capsys.readouterr().out.count("✓") == len(list(PERSONAS.glob("*.yaml")))
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nname: Bad\nsystem_prompt: hi\nmemory:\n  strategy: psychic\n")
    assert main(["personas", "validate", str(bad), str(PERSONAS / "cody.yaml")]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml" in out and "memory.strategy" in out and "✓" in out


def test_personas_import_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Old Mara",
            "description": "A lighthouse keeper.",
            "personality": "patient",
            "scenario": "A stormy night.",
            "first_mes": "Come in from the rain.",
            "mes_example": "",
            "character_book": {
                "entries": [
                    {
                        "keys": [],
                        "content": "The lighthouse is on Gull Rock.",
                        "constant": True,
                        "enabled": True,
                    },
                ]
            },
        },
    }
    src = tmp_path / "mara.json"
    src.write_text(json.dumps(card))
    target = tmp_path / "personas"
    assert main(["personas", "import", str(src), "--dir", str(target)]) == 0
    assert "restart it" in " ".join(capsys.readouterr().out.split())
    files = list(target.glob("*.yaml"))
    assert len(files) == 1
    persona = load_persona_file(files[0])
    assert persona.name == "Old Mara" and persona.character_book is not None
    assert persona.character_book["entries"][0]["content"] == "The lighthouse is on Gull Rock."
    # not twice without --force
    assert main(["personas", "import", str(src), "--dir", str(target)]) == 1
    assert main(["personas", "import", str(src), "--dir", str(target), "--force"]) == 0
    # the same card as a PNG (the JSON base64 in a `chara` chunk), under a chosen id
    png = tmp_path / "mara.png"
    png.write_bytes(card_png(text("chara", encoded(card))))
    assert main(["personas", "import", str(png), "--dir", str(target), "--id", "mara-png"]) == 0
    from_png = load_persona_file(target / "mara-png.yaml")
    assert from_png.id == "mara-png" and from_png.character_book == persona.character_book
    broken = tmp_path / "broken.json"
    broken.write_text('{"spec": "chara_card_v2", "data": {}}')
    assert main(["personas", "import", str(broken), "--dir", str(target)]) == 1


def test_serve_refuses_public_bind_without_auth(capsys: pytest.CaptureFixture[str]) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_serve_refuses_invalid_personas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    personas = tmp_path / "p"
    shutil.copytree(PERSONAS, personas)
    (personas / "oops.yaml").write_text("id: oops\nname: O\nsystem_prompt: x\nmood: 3\n")
    monkeypatch.setenv("MEMENTO_PERSONAS_DIR", str(personas))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "oops.yaml" in err and "mood" in err


def test_serve_refuses_an_index_of_another_embedder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mlx_worker: object,
) -> None:
    import asyncio
    from datetime import UTC, datetime

    from memory.embeddings import MLXEmbedder
    from memory.types import SessionInfo
    from memory.vector_index import IndexRecord, VectorIndex

    # an index that MiniLM built (the default before issue 11)
    index = VectorIndex.open(tmp_path / "data", None, MLXEmbedder(mlx_worker))  # type: ignore[arg-type]
    record = IndexRecord(1, "user", "우리 강아지 이름은 콩이야", datetime(2024, 1, 1, tzinfo=UTC))
    asyncio.run(index.upsert(SessionInfo(id="s", user_id="u", persona_id="p"), [record]))
    monkeypatch.setenv("MEMENTO_EMBEDDER", "e5")
    assert main(["serve"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot start" in err and "all-MiniLM-L6-v2" in err and "memento reindex" in err


def test_plugin_subcommands_register(tmp_path: Path) -> None:
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "generate", "personas"} <= set(choices)


def test_generate_streams_to_stdout() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [str(MEMENTO), "generate", "What is the capital of France?", "--max-tokens", "12"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert "Paris" in run.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_runs_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEMENTO_DATA_DIR": str(tmp_path / "d")}
    proc = subprocess.Popen(
        [str(MEMENTO), "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.5)
        assert health.json()["backend"] == "mlx"
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    assert "loading the model" in output and "ready: model" in output


def test_serve_refuses_a_busy_port_before_loading_the_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"port {port} on 127.0.0.1 is already in use" in err and "Memento on" not in err


def test_chat_help_keeps_its_argument_hints() -> None:
    from rich.console import Console

    from app.cli.chat import HELP

    console = Console(record=True, width=200)
    console.print(HELP)
    text = console.export_text()
    assert "/context [id]" in text and "/new [persona]" in text


def test_chat_new_with_another_persona_takes_its_default_strategy() -> None:
    from rich.console import Console

    from app.cli.chat import ChatRepl

    class Client:
        """Records the sessions the REPL asks for (no server: only /new's choice is tested)."""

        def __init__(self) -> None:
            self.created: list[tuple[str | None, str | None]] = []

        def create_session(self, persona: str | None, strategy: str | None) -> dict:
            self.created.append((persona, strategy))
            return {"id": "s", "persona": persona, "memory": {"strategy": strategy or "default"}}

        def persona(self, persona_id: str) -> dict:
            return {"id": persona_id, "name": persona_id}

    client = Client()
    repl = ChatRepl(client, Console(quiet=True), None)  # type: ignore[arg-type]
    repl.open(None, "pippa", "window")
    repl.new("")  # same persona: same strategy
    repl.new("cody")  # another persona: its own default (none asked for)
    assert client.created == [("pippa", "window"), ("pippa", "window"), ("cody", None)]


def test_personas_validate_names_a_card_as_import_will(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Seraphina"}}
    card["data"].update(description="A forest guardian.", first_mes="Hello.", mes_example="")
    src = tmp_path / "seraphina_v2.json"
    src.write_text(json.dumps(card))
    assert main(["personas", "validate", str(src)]) == 0
    validated = capsys.readouterr().out
    assert main(["personas", "import", str(src), "--dir", str(tmp_path / "p")]) == 0
    imported = capsys.readouterr().out
    persona_id = re.search(r"as persona '([^']+)'", imported).group(1)  # type: ignore[union-attr]
    assert f": {persona_id} (Seraphina)" in validated and "seraphina_v2 (" not in validated
