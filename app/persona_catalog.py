"""Every persona the service knows: the files of personas/ plus the ones uploaded through the API.

Files are loaded (and validated) at startup; uploads are validated on the way in and kept in the
store, so they survive restarts. A file persona's id cannot be taken by an upload.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import ConflictError, NotFoundError
from app.personas.errors import PersonaError
from app.personas.loader import parse_persona_data, parse_persona_text
from app.personas.model import Persona
from app.store.repo import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogEntry:
    persona: Persona
    source: str  # "file" or "uploaded"


class PersonaCatalog:
    def __init__(self, files: Mapping[str, Persona], max_bytes: int = 256_000) -> None:
        self._entries: dict[str, CatalogEntry] = {
            pid: CatalogEntry(p, "file") for pid, p in files.items()
        }
        self._store: Store | None = None
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def attach_store(self, store: Store) -> None:
        """Load the uploaded personas kept in the store; later uploads are saved there."""
        self._store = store
        for rec in store.list_personas():
            try:
                persona, _ = parse_persona_text(
                    rec.source, f"uploaded persona {rec.id}", default_id=rec.id,
                    max_bytes=max(self._max_bytes, len(rec.source.encode())),
                )
            except PersonaError as exc:
                # validated when uploaded; a later schema change must not stop the server
                log.warning("skipping uploaded persona %s: %s", rec.id, exc)
                continue
            if rec.id not in self._entries:
                self._entries[rec.id] = CatalogEntry(persona, "uploaded")

    def get(self, persona_id: str) -> Persona:
        entry = self._entries.get(persona_id)
        if entry is None:
            raise NotFoundError(f"persona {persona_id!r} not found", field="persona")
        return entry.persona

    def entry(self, persona_id: str) -> CatalogEntry:
        self.get(persona_id)
        return self._entries[persona_id]

    def list(self) -> list[CatalogEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.source != "file", e.persona.id))

    def __contains__(self, persona_id: object) -> bool:
        return persona_id in self._entries

    def add(self, body: str | Mapping[str, Any], user_id: str | None = None) -> Persona:
        """Validate an upload (our YAML/JSON form or a Character Card V2/V3) and keep it.

        PersonaError (422) when malformed; ConflictError (409) when the id is taken.
        """
        if isinstance(body, str):
            persona, fmt = parse_persona_text(body, "upload", max_bytes=self._max_bytes)
            source = body
        else:
            # a decoded JSON body must meet the same limit as text: measure it re-serialized
            source = json.dumps(body, ensure_ascii=False)
            size = len(source.encode("utf-8"))
            if size > self._max_bytes:
                raise PersonaError(
                    "upload",
                    None,
                    f"is {size} bytes, over the {self._max_bytes}-byte limit "
                    "(MEMENTO_MAX_PERSONA_BYTES)",
                )
            persona, fmt = parse_persona_data(body, "upload")
        with self._lock:
            if persona.id in self._entries:
                raise ConflictError(
                    f"persona {persona.id!r} already exists; choose another id", field="id"
                )
            if self._store is not None:
                # keep the validated form: cards need no re-conversion at the next start
                self._store.save_persona(
                    persona.id, persona.model_dump_json(), "json", user_id=user_id
                )
            self._entries[persona.id] = CatalogEntry(persona, "uploaded")
        log.info("persona %s added (%s, %d bytes)", persona.id, fmt, len(source))
        return persona
