"""Persona files: the shipped ones validate; a bad one names the file, the field, the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.config import Settings
from app.personas.errors import PersonaError
from app.personas.loader import load_persona_file, load_personas, parse_persona_text

SHIPPED = Path(__file__).resolve().parents[3] / "personas"

MINIMAL = "name: Nabi\nsystem_prompt: You are Nabi, a cat.\n"


def test_every_shipped_persona_validates() -> None:
    personas = load_personas(SHIPPED, Settings().max_persona_bytes)
    assert {"assistant", "pippa", "cody"} <= set(personas)
    for pid, p in personas.items():
        assert p.id == pid and p.greeting and p.example_dialogue
        # short enough for a 135M model to follow: a few sentences
        assert len(p.system_prompt.split()) < 90, pid


def test_pippa_register_is_a_pinned_style_rule() -> None:
    pippa = load_personas(SHIPPED)["pippa"]
    assert pippa.memory.strategy == "hybrid" and pippa.user_name == "아빠"
    style = [f.text for f in pippa.pinned() if f.source == "style"]
    assert any("반말" in s and "Korean" in s for s in style)
    assert any("English" in s for s in style)
    # the example dialogue shows both registers
    replies = [d.content for d in pippa.example_dialogue if d.role == "assistant"]
    assert any(any("\uac00" <= c <= "\ud7a3" for c in r) for r in replies)
    assert any(r.isascii() is False and "Welcome" in r for r in replies)
    assert "아빠: 피파야" in pippa.render_system_prompt()


def test_assistant_and_cody_defaults() -> None:
    personas = load_personas(SHIPPED)
    assert personas["assistant"].memory.strategy == "summary_buffer"
    cody = personas["cody"]
    assert "Pippa" in cody.system_prompt and "chuunibyou" in cody.system_prompt


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_id_defaults_to_file_name(tmp_path: Path) -> None:
    _write(tmp_path, "nabi.yaml", MINIMAL)
    _write(tmp_path, "notes.txt", "ignored")
    personas = load_personas(tmp_path)
    assert list(personas) == ["nabi"]
    assert personas["nabi"].memory.strategy == "summary_buffer"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (MINIMAL + "temprature: 0.5\n", "temprature", "unknown field"),
        (
            MINIMAL + "generation:\n  temperature: 5\n",
            "generation.temperature",
            "less than or equal to 2",
        ),
        (
            MINIMAL + "generation:\n  temprature: 0.5\n",
            "generation.temprature",
            "allowed: temperature, top_p, max_tokens",
        ),
        (MINIMAL + "memory:\n  strategy: forgetful\n", "memory.strategy", "'hybrid'"),
        (
            MINIMAL + "example_dialogue:\n  - role: narrator\n    content: hi\n",
            "example_dialogue.0.role",
            "'user' or 'assistant'",
        ),
        (MINIMAL + "pinned_facts: [ok, '  ']\n", "pinned_facts", "item 1 is empty"),
        (MINIMAL + "id: Bad Id\n", "id", "must be a slug"),
        ("name: Nabi\n", "system_prompt", "Field required"),
    ],
)
def test_bad_file_names_file_and_field(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = _write(tmp_path, "nabi.yaml", text)
    _write(tmp_path, "assistant.yaml", (SHIPPED / "assistant.yaml").read_text("utf-8"))
    with pytest.raises(PersonaError) as e:
        load_personas(tmp_path)
    assert e.value.source == str(path) and e.value.field == field
    assert problem in e.value.problem, e.value.problem
    assert str(path) in str(e.value) and field in str(e.value)


def test_unparseable_files(tmp_path: Path) -> None:
    bad_yaml = _write(tmp_path, "a.yaml", "name: [unclosed\n")
    with pytest.raises(PersonaError, match=r"a\.yaml: invalid YAML at line \d"):
        load_persona_file(bad_yaml)
    not_a_mapping = _write(tmp_path, "b.yaml", "- just\n- a list\n")
    with pytest.raises(PersonaError, match="expected a mapping of fields, got list"):
        load_persona_file(not_a_mapping)
    empty = _write(tmp_path, "c.yaml", "")
    with pytest.raises(PersonaError, match="empty document"):
        load_persona_file(empty)
    binary = tmp_path / "d.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PersonaError, match="not UTF-8"):
        load_persona_file(binary)


def test_size_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.yaml", MINIMAL + f"description: {'x' * 2000}\n")
    with pytest.raises(PersonaError, match="over the 1000-byte limit"):
        load_persona_file(path, max_bytes=1000)
    with pytest.raises(PersonaError, match="over the 10-byte limit"):
        parse_persona_text(MINIMAL, "upload", max_bytes=10)


def test_duplicate_ids_and_missing_dir(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "id: same\n" + MINIMAL)
    _write(tmp_path, "b.yml", "id: same\n" + MINIMAL)
    with pytest.raises(PersonaError, match="'same' is already defined by a.yaml") as e:
        load_personas(tmp_path)
    assert e.value.field == "id" and e.value.source.endswith("b.yml")
    with pytest.raises(PersonaError, match="personas directory not found"):
        load_personas(tmp_path / "nowhere")


def test_text_upload_detects_json_yaml_and_cards() -> None:
    p, fmt = parse_persona_text(MINIMAL, "upload", default_id="nabi")
    assert (p.id, fmt) == ("nabi", "yaml")
    as_json = json.dumps({"id": "nabi2", "name": "Nabi", "system_prompt": "You are a cat."})
    assert parse_persona_text(as_json, "upload")[1] == "json"
    card = (Path(__file__).parent / "fixtures" / "card_v3.json").read_text("utf-8")
    p, fmt = parse_persona_text(card, "upload")
    assert fmt == "card" and p.id == "haneul"
    with pytest.raises(PersonaError, match="invalid JSON at line 1"):
        parse_persona_text("{not json", "upload")
