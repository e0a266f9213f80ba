"""Memento's version: the OpenAPI document and /healthz report it (pyproject.toml says the same)."""

VERSION = "0.1.0"
