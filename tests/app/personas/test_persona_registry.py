"""Uploaded personas: validated, kept in the real store, back after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.personas.errors import PersonaError
from app.personas.registry import PersonaRegistry
from app.store.errors import Conflict, NotFound
from app.store.repo import Store

SHIPPED = Path(__file__).resolve().parents[3] / "personas"
FIXTURES = Path(__file__).parent / "fixtures"
NABI = "id: nabi\nname: Nabi\nsystem_prompt: You are Nabi, a sleepy cat.\n"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'memento.db'}"


def test_uploads_survive_a_restart(db_url: str) -> None:
    store = Store(db_url)
    registry = PersonaRegistry.from_dir(SHIPPED)
    assert registry.attach_store(store) == []
    card = json.loads((FIXTURES / "card_v2.json").read_text("utf-8"))
    assert registry.add(card, user_id=None).id == "captain-mira"
    assert registry.add(NABI.encode()).id == "nabi"
    assert registry.origin("nabi") == "uploaded" and registry.origin("pippa") == "file"
    store.close()

    store = Store(db_url)  # a restarted server
    again = PersonaRegistry.from_dir(SHIPPED)
    assert "nabi" not in again
    again.attach_store(store)
    assert again.get("captain-mira") == registry.get("captain-mira")
    assert again.get("nabi").system_prompt == "You are Nabi, a sleepy cat."
    ids = [p.id for p in again.list()]
    assert ids[:3] == ["assistant", "cody", "pippa"] and set(ids[3:]) == {"captain-mira", "nabi"}
    store.close()


def test_upload_conflicts_and_errors(db_url: str) -> None:
    store = Store(db_url)
    registry = PersonaRegistry.from_dir(SHIPPED, max_bytes=5_000)
    registry.attach_store(store)
    with pytest.raises(Conflict, match="persona file"):
        registry.add(NABI.replace("id: nabi", "id: pippa"))
    registry.add(NABI)
    with pytest.raises(Conflict, match="already exists"):
        registry.add(NABI)
    replaced = registry.add(NABI.replace("sleepy", "hungry"), replace=True)
    assert "hungry" in replaced.system_prompt and "hungry" in store.get_persona("nabi").source
    with pytest.raises(PersonaError, match="uploaded persona: field 'name'"):
        registry.add({"id": "x", "name": "", "system_prompt": "s"})
    with pytest.raises(PersonaError, match="over the 5000-byte limit"):
        registry.add({"id": "x", "name": "X", "system_prompt": "s" * 6000})
    with pytest.raises(NotFound, match="persona"):
        registry.get("ghost")
    with pytest.raises(Conflict):
        registry.remove("pippa")
    registry.remove("nabi")
    assert "nabi" not in registry and store.list_personas() == []
    store.close()


def test_an_upload_that_no_longer_validates_is_skipped_not_fatal(db_url: str) -> None:
    store = Store(db_url)
    store.save_persona("broken", "name: [", "yaml")
    store.save_persona("pippa", NABI.replace("nabi", "pippa"), "yaml")  # shadowed by the file
    registry = PersonaRegistry.from_dir(SHIPPED)
    assert sorted(registry.attach_store(store)) == ["broken", "pippa"]
    assert "broken" not in registry and registry.get("pippa").name == "Pippa"
    store.close()
