"""API keys and uploaded personas: the Store's account-level tables (mixed into Store)."""

from __future__ import annotations

import hashlib
import secrets
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store.errors import Conflict, NotFound
from app.store.models import ApiKey, UploadedPersona, User, utcnow
from app.store.records import ApiKeyRecord, PersonaRecord, UserRecord

KEY_PREFIX = "mk_"
# last_used_at is bookkeeping: refresh it at most this often, so that verifying a key on every
# request is not a write on every request
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    """sha256 hex of the key. Keys carry 256 random bits, so a fast hash is enough (a slow KDF
    protects guessable passwords, not random tokens)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeysMixin:
    """Needs `_tx()` and `_read()` from Store."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...

    # ---- API keys ----------------------------------------------------------------------

    def create_api_key(self, user_id: str) -> tuple[ApiKeyRecord, str]:
        """A new key for the user: (its record, the plaintext key). The plaintext is shown once
        and never stored; only its sha256 is."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._tx() as db:
            user = db.get(User, user_id)
            if user is None:
                raise NotFound("user", user_id)
            row = ApiKey(
                id="key_" + secrets.token_hex(8),
                user_id=user_id,
                prefix=key[: len(KEY_PREFIX) + 8],
                key_hash=hash_key(key),
                created_at=utcnow(),
            )
            db.add(row)
            db.flush()
            return _key(row, user.name), key

    def verify_api_key(self, key: str) -> UserRecord | None:
        """The key's user, or None for an unknown or revoked key."""
        if not key or not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        with self._read() as db:
            row = db.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if row is None or row.revoked_at is not None:
                return None
            # compare_digest: the lookup matched by hash; this keeps the check constant-time
            if not secrets.compare_digest(row.key_hash, digest):
                return None
            user = db.get(User, row.user_id)
            stale = row.last_used_at is None or utcnow() - row.last_used_at > _LAST_USED_RESOLUTION
            key_id = row.id
            record = (
                UserRecord(id=user.id, name=user.name, created_at=user.created_at) if user else None
            )
        if record is not None and stale:
            with self._tx() as db:
                refreshed = db.get(ApiKey, key_id)
                if refreshed is not None:
                    refreshed.last_used_at = utcnow()
        return record

    def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys (without secrets), oldest first; all users' when user_id is None."""
        with self._read() as db:
            q = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id)
            if user_id is not None:
                q = q.where(ApiKey.user_id == user_id)
            return [_key(k, name) for k, name in db.execute(q.order_by(ApiKey.created_at))]

    def revoke_api_key(self, key_id_or_prefix: str, user_id: str | None = None) -> ApiKeyRecord:
        """Revoke by key id ("key_...") or displayed prefix ("mk_..."); idempotent.
        NotFound if no such key (or not `user_id`'s); Conflict if a prefix is ambiguous."""
        with self._tx() as db:
            q = (
                select(ApiKey, User.name)
                .join(User, User.id == ApiKey.user_id)
                .where(or_(ApiKey.id == key_id_or_prefix, ApiKey.prefix == key_id_or_prefix))
            )
            if user_id is not None:
                q = q.where(ApiKey.user_id == user_id)
            found = list(db.execute(q))
            if not found:
                raise NotFound("api key", key_id_or_prefix)
            if len(found) > 1:
                raise Conflict(f"key prefix {key_id_or_prefix!r} is ambiguous: use the key id")
            row, name = found[0]
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            db.flush()
            return _key(row, name)

    # ---- uploaded personas -------------------------------------------------------------
    # Private to their uploader: every method takes the owner, and another user's persona is
    # NotFound exactly like a missing one. Ids are per user (two users may share an id).

    def save_persona(
        self,
        user_id: str,
        persona_id: str,
        source: str,
        format: str,
        *,
        replace: bool = False,
    ) -> PersonaRecord:
        """Keep an uploaded persona's source (re-validated at load) so it survives restarts.
        Conflict if the user already has this id and replace is False."""
        try:
            with self._tx() as db:
                row = db.get(UploadedPersona, (user_id, persona_id))
                now = utcnow()
                if row is not None and not replace:
                    raise Conflict(f"you already have a persona {persona_id!r}")
                if row is None:
                    row = UploadedPersona(
                        user_id=user_id,
                        id=persona_id,
                        created_at=now,
                        format=format,
                        source=source,
                    )
                    db.add(row)
                row.format, row.source, row.updated_at = format, source, now
                db.flush()
                return _persona(row)
        except IntegrityError:
            # another replica saved the same id between our read and insert (an unknown user
            # would fail the foreign key instead: say which)
            with self._read() as db:
                if db.get(User, user_id) is None:
                    raise NotFound("user", user_id) from None
            raise Conflict(f"you already have a persona {persona_id!r}") from None

    def get_persona(self, user_id: str, persona_id: str) -> PersonaRecord:
        """The user's upload; NotFound if missing or another user's."""
        with self._read() as db:
            row = db.get(UploadedPersona, (user_id, persona_id))
            if row is None:
                raise NotFound("persona", persona_id)
            return _persona(row)

    def list_personas(self, user_id: str | None = None) -> list[PersonaRecord]:
        """The user's uploads, oldest first; every user's when user_id is None (start-up)."""
        with self._read() as db:
            q = select(UploadedPersona)
            if user_id is not None:
                q = q.where(UploadedPersona.user_id == user_id)
            rows = db.scalars(q.order_by(UploadedPersona.created_at, UploadedPersona.id))
            return [_persona(r) for r in rows]

    def delete_persona(self, user_id: str, persona_id: str) -> None:
        """Delete the user's upload; NotFound if missing or another user's."""
        with self._tx() as db:
            row = db.get(UploadedPersona, (user_id, persona_id))
            if row is None:
                raise NotFound("persona", persona_id)
            db.delete(row)


def _key(row: ApiKey, user_name: str) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        user_id=row.user_id,
        user_name=user_name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _persona(row: UploadedPersona) -> PersonaRecord:
    return PersonaRecord(
        id=row.id,
        user_id=row.user_id,
        format=row.format,
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
