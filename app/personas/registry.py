"""PersonaRegistry: the personas a server knows, from files and from uploads kept in the store."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from app.personas.errors import PersonaError
from app.personas.loader import (
    DEFAULT_MAX_BYTES,
    Format,
    load_personas,
    parse_persona_data,
    parse_persona_text,
)
from app.personas.model import Persona
from app.store.errors import Conflict, NotFound

if TYPE_CHECKING:
    from app.store.repo import Store

log = logging.getLogger(__name__)
Origin = Literal["file", "uploaded"]


class PersonaRegistry:
    """Thread-safe lookup of personas by id. File personas are fixed at startup; uploads are
    validated, saved in the store (so they survive restarts) and registered."""

    def __init__(self, files: dict[str, Persona], max_bytes: int = DEFAULT_MAX_BYTES):
        self._personas: dict[str, Persona] = dict(files)
        self._origin: dict[str, Origin] = dict.fromkeys(files, "file")
        self._store: Store | None = None
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> PersonaRegistry:
        """Load every persona file (PersonaError on the first bad one)."""
        return cls(load_personas(directory, max_bytes), max_bytes)

    def attach_store(self, store: Store) -> list[str]:
        """Register the uploads kept in `store`, and save future uploads there. An upload that
        no longer validates (or clashes with a file persona) is skipped with a warning, not
        fatal: it came from a user, not from the operator. Returns the skipped ids."""
        skipped = []
        with self._lock:
            self._store = store
            for record in store.list_personas():
                if self._origin.get(record.id) == "file":
                    log.warning("uploaded persona %r is shadowed by a persona file", record.id)
                    skipped.append(record.id)
                    continue
                try:
                    persona, _ = parse_persona_text(
                        record.source,
                        f"uploaded persona {record.id!r}",
                        default_id=record.id,
                        max_bytes=max(self._max_bytes, len(record.source.encode())),
                    )
                except PersonaError as e:
                    log.warning("skipping uploaded persona: %s", e)
                    skipped.append(record.id)
                    continue
                self._personas[record.id] = persona.model_copy(update={"id": record.id})
                self._origin[record.id] = "uploaded"
        return skipped

    def get(self, persona_id: str) -> Persona:
        """The persona; store NotFound("persona", id) (-> 404) if unknown."""
        with self._lock:
            persona = self._personas.get(persona_id)
        if persona is None:
            raise NotFound("persona", persona_id)
        return persona

    def origin(self, persona_id: str) -> Origin:
        self.get(persona_id)
        return self._origin[persona_id]

    def list(self) -> list[Persona]:
        """File personas in file order, then uploads in upload order."""
        with self._lock:
            return list(self._personas.values())

    def __contains__(self, persona_id: object) -> bool:
        return persona_id in self._personas

    def __len__(self) -> int:
        return len(self._personas)

    def add(
        self,
        upload: str | bytes | dict[str, Any],
        user_id: str | None = None,
        replace: bool = False,
        persona_id: str | None = None,
    ) -> Persona:
        """Validate an upload (our YAML/JSON form, or a Character Card V2/V3), store it and
        register it. PersonaError (422) if invalid; Conflict (409) if the id is taken (a file
        persona can never be replaced; an upload only with replace=True)."""
        source = "uploaded persona"
        if isinstance(upload, bytes):
            try:
                upload = upload.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PersonaError(source, None, f"not UTF-8 text (byte {e.start})") from None
        if isinstance(upload, str):
            persona, fmt = parse_persona_text(upload, source, persona_id, self._max_bytes)
            text = upload
        else:
            persona, fmt = parse_persona_data(upload, source, persona_id, "json")
            text = _dump_json(upload)
            if len(text.encode()) > self._max_bytes:
                raise PersonaError(
                    source,
                    None,
                    f"is over the {self._max_bytes}-byte limit (MEMENTO_MAX_PERSONA_BYTES)",
                )
        if persona_id is not None:
            persona = persona.model_copy(update={"id": persona_id})
        self._register(persona, text, fmt, user_id, replace)
        return persona

    def _register(
        self, persona: Persona, text: str, fmt: Format, user_id: str | None, replace: bool
    ) -> None:
        with self._lock:
            if self._origin.get(persona.id) == "file":
                raise Conflict(
                    f"persona {persona.id!r} is defined by a persona file and cannot "
                    "be replaced by an upload"
                )
            if persona.id in self._personas and not replace:
                raise Conflict(f"persona {persona.id!r} already exists")
            if self._store is not None:
                self._store.save_persona(persona.id, text, fmt, user_id, replace=replace)
            self._personas[persona.id] = persona
            self._origin[persona.id] = "uploaded"

    def remove(self, persona_id: str) -> None:
        """Delete an uploaded persona (file personas are the operator's: Conflict)."""
        with self._lock:
            origin = self._origin.get(persona_id)
            if origin is None:
                raise NotFound("persona", persona_id)
            if origin == "file":
                raise Conflict(f"persona {persona_id!r} is a persona file; remove the file")
            if self._store is not None:
                self._store.delete_persona(persona_id)
            del self._personas[persona_id], self._origin[persona_id]


def _dump_json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)
