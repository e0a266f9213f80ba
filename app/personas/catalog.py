"""Every persona the service knows: the files of personas/ plus the ones uploaded through the API.

Files are loaded (and validated) at startup and everyone sees them. Uploads are validated on the
way in, kept in the store so they survive restarts, and private to their uploader: each user has
their own id space, and another user's upload answers exactly like an id that does not exist
(404), so nobody learns that it does. A file persona's id cannot be taken by an upload.

Routes reach the catalog through `for_user` (app.deps.PersonasDep), so a lookup is always made
on behalf of someone; ChatService passes the session's owner.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.errors import ConflictError, NotFoundError
from app.personas.errors import PersonaError
from app.personas.loader import parse_persona_text, parse_persona_upload
from app.personas.model import Persona
from app.store.errors import Conflict, NotFound
from app.store.records import SessionRecord
from app.store.repo import Store

Upload = str | bytes | Mapping[str, Any]  # text, a card PNG, or a decoded JSON body

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

    def add(self, body: Upload, user_id: str, persona_id: str | None = None) -> Persona:
        """Validate an upload (our YAML/JSON form, a Character Card V1/V2/V3 as JSON or PNG)
        and keep it as `user_id`'s, under `persona_id` when given (else the body's id or the
        card name's slug).

        PersonaError (422) when malformed; ConflictError (409) when the id is a file persona's
        or one of this user's uploads. Other users' ids are no obstacle (nor revealed).
        """
        persona, fmt = parse_persona_upload(body, "upload", persona_id, self._max_bytes)
        with self._lock:
            self._check_not_builtin(persona.id, "choose another id (?id=...)")
            own = self._uploads.setdefault(user_id, {})
            if persona.id in own:
                raise _taken(persona.id)
            if self._store is not None:
                try:
                    # keep the validated form: cards need no re-conversion at the next start
                    self._store.save_persona(user_id, persona.id, persona.model_dump_json(), "json")
                except Conflict:  # saved through another replica since this one started
                    raise _taken(persona.id) from None
            own[persona.id] = CatalogEntry(persona, "uploaded")
        log.info("persona %s added for user %s (%s)", persona.id, user_id, fmt)
        return persona

    def replace(self, persona_id: str, body: Upload, user_id: str) -> Persona:
        """Replace `user_id`'s upload `persona_id` with a new upload (any form `add` takes; the
        id stays `persona_id` whatever the body says). NotFoundError if it is not theirs,
        ConflictError for a built-in persona. Sessions with it use the new one from their next
        turn; their messages and memory stay as they are."""
        self._check_not_builtin(persona_id, "upload a copy under another id (POST /v1/personas)")
        persona, fmt = parse_persona_upload(body, "upload", persona_id, self._max_bytes)
        self._swap(persona_id, user_id, persona)
        log.info("persona %s replaced for user %s (%s)", persona_id, user_id, fmt)
        return persona

    def set_book(self, persona_id: str, book: dict[str, Any] | None, user_id: str) -> Persona:
        """`user_id`'s upload with `book` as its character_book (None removes it)."""
        self._check_not_builtin(persona_id, "upload a copy under another id to give it a book")
        current = self._own(persona_id, user_id).persona
        try:
            persona = Persona.model_validate({**current.model_dump(), "character_book": book})
        except ValidationError as e:
            raise PersonaError("book", None, e.errors()[0]["msg"]) from None
        self._swap(persona_id, user_id, persona)
        return persona

    def delete(self, persona_id: str, user_id: str) -> None:
        """Delete `user_id`'s upload (and its book, which lives in it). NotFoundError if it is
        not theirs, ConflictError for a built-in persona. The user's sessions with it keep
        their messages and memory; until a persona with that id is uploaded again, a turn in
        them answers 409 (session_persona) and reading them still works."""
        self._check_not_builtin(persona_id, "built-in personas cannot be deleted")
        with self._lock:
            self._own(persona_id, user_id)
            if self._store is not None:
                # NotFound: deleted through another replica meanwhile; gone either way
                with contextlib.suppress(NotFound):
                    self._store.delete_persona(user_id, persona_id)
            del self._uploads[user_id][persona_id]
        log.info("persona %s deleted for user %s", persona_id, user_id)

    def session_persona(self, session: SessionRecord) -> Persona:
        """The persona of a session, for its owner. A session whose persona was deleted is a
        409 that says how to go on, not a 404 that reads as if the session were missing."""
        try:
            return self.get(session.persona_id, session.user_id)
        except NotFoundError:
            raise ConflictError(
                f"session {session.id} uses persona {session.persona_id!r}, which no longer "
                "exists (it was deleted); its messages and memory are kept: upload a persona "
                f"with that id again (POST /v1/personas?id={session.persona_id}) to go on with "
                "it, or export the session",
                field="persona",
            ) from None

    def _check_not_builtin(self, persona_id: str, advice: str) -> None:
        if persona_id in self._files:
            raise ConflictError(
                f"persona {persona_id!r} is a built-in persona (personas/); {advice}",
                field="id",
            )

    def _own(self, persona_id: str, user_id: str) -> CatalogEntry:
        entry = self._uploads.get(user_id, {}).get(persona_id)
        if entry is None:  # the same answer for another user's upload as for no upload
            raise NotFoundError(f"persona {persona_id!r} not found", field="persona")
        return entry

    def _swap(self, persona_id: str, user_id: str, persona: Persona) -> None:
        with self._lock:
            self._own(persona_id, user_id)
            if self._store is not None:
                # the store writes in one transaction: a failure leaves the old persona whole
                self._store.save_persona(
                    user_id, persona_id, persona.model_dump_json(), "json", replace=True
                )
            self._uploads[user_id][persona_id] = CatalogEntry(persona, "uploaded")


def _taken(persona_id: str) -> ConflictError:
    return ConflictError(
        f"you already uploaded a persona {persona_id!r}; replace it with "
        f"PUT /v1/personas/{persona_id}, or choose another id (?id=...)",
        field="id",
    )


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

    def add(self, body: Upload, persona_id: str | None = None) -> Persona:
        return self.catalog.add(body, self.user_id, persona_id)

    def replace(self, persona_id: str, body: Upload) -> Persona:
        return self.catalog.replace(persona_id, body, self.user_id)

    def set_book(self, persona_id: str, book: dict[str, Any] | None) -> Persona:
        return self.catalog.set_book(persona_id, book, self.user_id)

    def delete(self, persona_id: str) -> None:
        self.catalog.delete(persona_id, self.user_id)
