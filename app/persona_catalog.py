"""Every persona the service knows: the files of personas/ plus the ones uploaded through the API.

Files are loaded (and validated) at startup and everyone sees them. Uploads are validated on the
way in, kept in the store so they survive restarts, and private to their uploader: each user has
their own id space, and another user's upload answers exactly like an id that does not exist
(404), so nobody learns that it does. A file persona's id cannot be taken by an upload.

Routes reach the catalog through `for_user` (app.deps.PersonasDep), so a lookup is always made
on behalf of someone; ChatService passes the session's owner.
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
from app.store.errors import Conflict
from app.store.repo import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogEntry:
    persona: Persona
    source: str  # "file" or "uploaded"


class PersonaCatalog:
    def __init__(self, files: Mapping[str, Persona], max_bytes: int = 256_000) -> None:
        self._files: dict[str, CatalogEntry] = {
            pid: CatalogEntry(p, "file") for pid, p in files.items()
        }
        self._uploads: dict[str, dict[str, CatalogEntry]] = {}  # user id -> persona id -> entry
        self._store: Store | None = None
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def attach_store(self, store: Store) -> None:
        """Load the uploaded personas kept in the store; later uploads are saved there."""
        self._store = store
        for rec in store.list_personas():
            if rec.id in self._files:
                # a persona file added since the upload: the file wins for everyone
                log.warning(
                    "skipping uploaded persona %s of user %s: a persona file has that id",
                    rec.id,
                    rec.user_id,
                )
                continue
            try:
                persona, _ = parse_persona_text(
                    rec.source,
                    f"uploaded persona {rec.id}",
                    default_id=rec.id,
                    max_bytes=max(self._max_bytes, len(rec.source.encode())),
                )
            except PersonaError as exc:
                # validated when uploaded; a later schema change must not stop the server
                log.warning("skipping uploaded persona %s: %s", rec.id, exc)
                continue
            if persona.id != rec.id:  # the stored id is the one sessions refer to
                persona = persona.model_copy(update={"id": rec.id})
            self._uploads.setdefault(rec.user_id, {})[rec.id] = CatalogEntry(persona, "uploaded")

    def for_user(self, user_id: str) -> UserPersonas:
        """The catalog as `user_id` sees it."""
        return UserPersonas(self, user_id)

    def entry(self, persona_id: str, user_id: str | None) -> CatalogEntry:
        """A file persona, or `user_id`'s own upload (None: file personas only). NotFoundError
        otherwise: the same for an unknown id and for another user's upload."""
        entry = self._files.get(persona_id)
        if entry is None and user_id is not None:
            entry = self._uploads.get(user_id, {}).get(persona_id)
        if entry is None:
            raise NotFoundError(f"persona {persona_id!r} not found", field="persona")
        return entry

    def get(self, persona_id: str, user_id: str | None) -> Persona:
        return self.entry(persona_id, user_id).persona

    def has(self, persona_id: str, user_id: str | None) -> bool:
        try:
            self.entry(persona_id, user_id)
        except NotFoundError:
            return False
        return True

    def list(self, user_id: str | None) -> list[CatalogEntry]:
        """The file personas, then `user_id`'s uploads, each by id."""
        own = list(self._uploads.get(user_id, {}).values()) if user_id is not None else []
        return sorted(self._files.values(), key=lambda e: e.persona.id) + sorted(
            own, key=lambda e: e.persona.id
        )

    def add(self, body: str | Mapping[str, Any], user_id: str) -> Persona:
        """Validate an upload (our YAML/JSON form or a Character Card V2/V3) and keep it as
        `user_id`'s.

        PersonaError (422) when malformed; ConflictError (409) when the id is a file persona's
        or one of this user's uploads. Other users' ids are no obstacle (nor revealed).
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
            if persona.id in self._files:
                raise ConflictError(
                    f"persona {persona.id!r} is a built-in persona (personas/); choose another id",
                    field="id",
                )
            own = self._uploads.setdefault(user_id, {})
            if persona.id in own:
                raise ConflictError(
                    f"you already uploaded a persona {persona.id!r}; choose another id",
                    field="id",
                )
            if self._store is not None:
                try:
                    # keep the validated form: cards need no re-conversion at the next start
                    self._store.save_persona(user_id, persona.id, persona.model_dump_json(), "json")
                except Conflict:  # saved through another replica since this one started
                    raise ConflictError(
                        f"you already uploaded a persona {persona.id!r}; choose another id",
                        field="id",
                    ) from None
            own[persona.id] = CatalogEntry(persona, "uploaded")
        log.info(
            "persona %s added for user %s (%s, %d bytes)", persona.id, user_id, fmt, len(source)
        )
        return persona


@dataclass(frozen=True)
class UserPersonas:
    """The personas one user may use: every file persona and their own uploads."""

    catalog: PersonaCatalog
    user_id: str

    def entry(self, persona_id: str) -> CatalogEntry:
        return self.catalog.entry(persona_id, self.user_id)

    def get(self, persona_id: str) -> Persona:
        return self.catalog.get(persona_id, self.user_id)

    def list(self) -> list[CatalogEntry]:
        return self.catalog.list(self.user_id)

    def __contains__(self, persona_id: object) -> bool:
        return isinstance(persona_id, str) and self.catalog.has(persona_id, self.user_id)

    def add(self, body: str | Mapping[str, Any]) -> Persona:
        return self.catalog.add(body, self.user_id)
