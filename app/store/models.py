"""The ORM schema (current version). Older versions live, frozen, in migration_steps.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.store.records import MessageStatus, Role


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
MessageId = BigInteger().with_variant(Integer(), "sqlite")

# Message statuses. "pending" marks a reply being generated; a server that dies mid-reply
# leaves it pending, and once its lease runs out (nobody renews it) any running instance turns
# it into "interrupted" (Store.recover_pending). A live instance's replies are never touched.
MESSAGE_STATUSES = ("complete", "interrupted", "error", "pending")
ROLES = ("user", "assistant", "system")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex, never the key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)  # schema v2


class ChatSession(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    persona_id: Mapped[str] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    strategy: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the strategy's, the scope's
    # schema v9: the cap on an assembled context, a session setting of the service (it was a
    # key of params, where every strategy had to be kept from seeing it); None: no cap
    budget_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    memory: Mapped[dict[str, Any]] = mapped_column(default=dict)  # memory.types.MemoryState
    # optimistic concurrency for memory: writers compare-and-swap on this counter
    memory_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_sessions_user_updated", "user_id", "updated_at"),  # schema v2
        Index("ix_sessions_user_persona", "user_id", "persona_id"),  # schema v5: memory scopes
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(MessageId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(String(16))  # the column type is explicit: a plain string
    content: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[MessageStatus] = mapped_column(String(16), default="complete")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the Context that produced this reply; no FK (contexts already point here, avoid a cycle)
    context_id: Mapped[str | None] = mapped_column(String(40), default=None)
    # schema v6: a pending reply's generating instance and until when it vouches for it (it
    # renews the lease while generating); recovery takes only replies whose lease ran out
    owner: Mapped[str | None] = mapped_column(String(80), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    # schema v8: a reply's token usage as generated ({prompt_tokens, cached_tokens,
    # completion_tokens}), so the page shows it again after a reload; None before v8
    usage: Mapped[dict[str, Any] | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_messages_session_id", "session_id", "id"),
        Index("ix_messages_session_status", "session_id", "status", "id"),  # schema v4
        Index("ix_messages_status_lease", "status", "lease_until"),  # schema v6
    )


class ContextRecord(Base):
    __tablename__ = "contexts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        MessageId, ForeignKey("messages.id", ondelete="CASCADE"), index=True, default=None
    )
    data: Mapped[dict[str, Any]] = mapped_column()  # memory.types.Context
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UploadedPersona(Base):
    """An uploaded persona, private to its uploader (schema v3: ids are per user, so two users
    may each have an "alice-bot"; the owner leads the key, which also serves "my uploads")."""

    __tablename__ = "personas"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    format: Mapped[str] = mapped_column(String(16))  # "yaml" | "json" | "card"
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Relationship(Base):
    """What a persona remembers of a user across sessions (schema v5):
    memory.relationship.RelationshipState as JSON."""

    __tablename__ = "relationships"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    persona_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoreBookRow(Base):
    """A lorebook a user uploaded (schema v7): the V3 `character_book` object as JSON, private
    to its owner like an uploaded persona (another user's id answers 404)."""

    __tablename__ = "lorebooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column()  # the character_book object
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionLorebook(Base):
    """A lorebook attached to a session (schema v7); goes with either of them."""

    __tablename__ = "session_lorebooks"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    book_id: Mapped[str] = mapped_column(
        ForeignKey("lorebooks.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    attached_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
