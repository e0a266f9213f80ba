"""Row helpers shared by the Store's parts: ownership checks and ORM-to-record copies."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import ROLES, ChatSession, Message, User
from app.store.records import MessageRecord, SessionRecord, UserRecord


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def own(db: Session, user_id: str, session_id: str) -> ChatSession:
    row = db.get(ChatSession, session_id)
    if row is None or row.user_id != user_id:
        raise NotFound("session", session_id)
    return row


def own_message(db: Session, user_id: str, session_id: str, message_id: int) -> Message:
    own(db, user_id, session_id)
    row = db.get(Message, message_id)
    if row is None or row.session_id != session_id:
        raise NotFound("message", message_id)
    return row


def count_sessions(db: Session, user_id: str) -> int:
    q = select(func.count()).select_from(ChatSession).where(ChatSession.user_id == user_id)
    return int(db.scalar(q) or 0)


def check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def user_record(row: User) -> UserRecord:
    return UserRecord(id=row.id, name=row.name, created_at=row.created_at)


def session_record(row: ChatSession) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        persona_id=row.persona_id,
        title=row.title,
        strategy=row.strategy,
        params=dict(row.params or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        budget_tokens=row.budget_tokens,
    )


def message_record(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        session_id=row.session_id,
        role=row.role,
        content=row.content,
        tokens=row.tokens,
        status=row.status,
        created_at=row.created_at,
        context_id=row.context_id,
        usage=row.usage,
    )
