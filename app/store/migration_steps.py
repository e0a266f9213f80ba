"""The schema's migration steps, in order: each brings a database of the previous version to
the next one's shape. app/store/migrations.py runs them.

The tables a step reads or builds are frozen here as they were at its version
(`v1_metadata`, `_v3_personas`, the columns `_step_9` reads), never taken from models.py, which
is the current schema: a step must do the same thing to an old database whatever the schema
has become since. To change the schema: change models.py and append a step to `STEPS` that
brings a database of the previous version to the same shape (CURRENT_VERSION follows the list).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from app.store.models import JSONType, MessageId, UTCDateTime, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    apply: Callable[[Connection], None]


def v1_metadata() -> MetaData:
    """The schema as first released, frozen: the starting point of every upgrade path."""
    md = MetaData()
    Table(
        "users",
        md,
        Column("id", String(40), primary_key=True),
        Column("name", String(200), nullable=False, unique=True),
        Column("created_at", UTCDateTime(), nullable=False),
    )
    Table(
        "api_keys",
        md,
        Column("id", String(40), primary_key=True),
        Column(
            "user_id",
            String(40),
            ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("prefix", String(32), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("revoked_at", UTCDateTime(), nullable=True),
    )
    Table(
        "sessions",
        md,
        Column("id", String(40), primary_key=True),
        Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        Column("persona_id", String(100), nullable=False),
        Column("title", String(200), nullable=True),
        Column("strategy", String(40), nullable=False),
        Column("params", JSONType, nullable=False),
        Column("memory", JSONType, nullable=False),
        Column("memory_version", Integer, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )
    messages = Table(
        "messages",
        md,
        Column("id", MessageId, primary_key=True, autoincrement=True),
        Column(
            "session_id", String(40), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
        ),
        Column("role", String(16), nullable=False),
        Column("content", Text, nullable=False),
        Column("tokens", Integer, nullable=False),
        Column("status", String(16), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("context_id", String(40), nullable=True),
    )
    Index("ix_messages_session_id", messages.c.session_id, messages.c.id)
    Table(
        "contexts",
        md,
        Column("id", String(40), primary_key=True),
        Column(
            "session_id",
            String(40),
            ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column(
            "message_id",
            MessageId,
            ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
        Column("data", JSONType, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
    )
    Table(
        "personas",
        md,
        Column("id", String(100), primary_key=True),
        Column("user_id", String(40), ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        Column("format", String(16), nullable=False),
        Column("source", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )
    Table(
        "schema_version",
        md,
        Column("version", Integer, primary_key=True),
        Column("applied_at", UTCDateTime(), nullable=False),
    )
    return md


def _step_2(conn: Connection) -> None:
    # when a key was last used (CLI `keys list`), and the index behind "my sessions, newest
    # first" which v1 answered with a scan
    conn.execute(
        text(
            "ALTER TABLE api_keys ADD COLUMN last_used_at TIMESTAMP WITH TIME ZONE"
            if conn.dialect.name == "postgresql"
            else "ALTER TABLE api_keys ADD COLUMN last_used_at DATETIME"
        )
    )
    conn.execute(text("CREATE INDEX ix_sessions_user_updated ON sessions (user_id, updated_at)"))


# must equal app.store.repo.LOCAL_USER (repo imports this module, not the other way round)
_LOCAL_USER = "local"


def _v3_personas(md: MetaData) -> Table:
    """The personas table of schema v3, frozen."""
    return Table(
        "personas",
        md,
        Column(
            "user_id",
            String(40),
            ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("id", String(100), primary_key=True),
        Column("format", String(16), nullable=False),
        Column("source", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )


def _local_user_id(conn: Connection) -> str:
    users = v1_metadata().tables["users"]
    found = conn.execute(select(users.c.id).where(users.c.name == _LOCAL_USER)).scalar()
    if found is not None:
        return str(found)
    user_id = f"usr_{secrets.token_hex(12)}"
    conn.execute(users.insert().values(id=user_id, name=_LOCAL_USER, created_at=utcnow()))
    return user_id


def _step_3(conn: Connection) -> None:
    # Uploaded personas become private to their uploader: the key turns from (id) into
    # (user_id, id). SQLite cannot change a primary key in place, and a rename would leave
    # PostgreSQL with constraint names of another table, so the rows are read, the table
    # rebuilt and the rows written back (one transaction; upload counts are small).
    md = v1_metadata()
    old, sessions = md.tables["personas"], md.tables["sessions"]  # v2 changed neither
    rows = [dict(r._mapping) for r in conn.execute(select(old))]
    if any(r["user_id"] is None for r in rows):
        # an upload whose user was deleted (SET NULL in v2) or saved without one: it goes to
        # the local user, the owner of everything when auth is off
        local = _local_user_id(conn)
        for r in rows:
            r["user_id"] = r["user_id"] or local
    # Sessions of other users that already use an upload (it was global until v3) keep
    # working: their owner gets a copy. They could read it before; nobody new sees it.
    by_id = {r["id"]: r for r in rows}
    borrowed = conn.execute(
        select(sessions.c.user_id, sessions.c.persona_id)
        .join(old, old.c.id == sessions.c.persona_id)
        .distinct()
    ).all()
    rows += [
        {**by_id[persona_id], "user_id": user_id}
        for user_id, persona_id in borrowed
        if by_id[persona_id]["user_id"] != user_id
    ]
    old.drop(conn)
    md.remove(old)
    new = _v3_personas(md)  # md knows "users", which the new foreign key names
    new.create(conn)
    if rows:
        conn.execute(new.insert(), rows)


def _step_4(conn: Connection) -> None:
    # every turn checks its cached history with count/max of the complete messages
    # (app/store/history.py): with this index that is an index range, not a 10k-row scan
    conn.execute(
        text("CREATE INDEX ix_messages_session_status ON messages (session_id, status, id)")
    )


def _step_5(conn: Connection) -> None:
    # cross-session memory: a relationship per (user, persona), and the sessions of a pair
    # found by index (every recall with a memory scope lists them)
    md = v1_metadata()  # knows "users", which the foreign key names (v2-v4 left it alone)
    Table(
        "relationships",
        md,
        Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        Column("persona_id", String(100), primary_key=True),
        Column("data", JSONType, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    ).create(conn)
    conn.execute(text("CREATE INDEX ix_sessions_user_persona ON sessions (user_id, persona_id)"))


def _step_6(conn: Connection) -> None:
    # leases on pending replies: which running instance generates one and until when it
    # vouches for it, so recovery (at start-up and by any replica) takes only abandoned ones;
    # the index serves that sweep without scanning every message
    stamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text("ALTER TABLE messages ADD COLUMN owner VARCHAR(80)"))
    conn.execute(text(f"ALTER TABLE messages ADD COLUMN lease_until {stamp}"))
    conn.execute(text("CREATE INDEX ix_messages_status_lease ON messages (status, lease_until)"))


def _step_7(conn: Connection) -> None:
    # lorebooks a user uploads (issue 16), private to their owner, and the sessions they are
    # attached to; both go with their user, session or book
    md = v1_metadata()  # knows "users" and "sessions", which the foreign keys name
    Table(
        "lorebooks",
        md,
        Column("id", String(40), primary_key=True),
        Column(
            "user_id",
            String(40),
            ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("name", String(200), nullable=False),
        Column("data", JSONType, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    ).create(conn)
    Table(
        "session_lorebooks",
        md,
        Column(
            "session_id",
            String(40),
            ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column(
            "book_id",
            String(40),
            ForeignKey("lorebooks.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
        Column("attached_at", UTCDateTime(), nullable=False),
    ).create(conn)


def _step_8(conn: Connection) -> None:
    # a reply's token usage, kept with it (issue 17: the page's token line was gone on reload)
    kind = "JSONB" if conn.dialect.name == "postgresql" else "JSON"
    conn.execute(text(f"ALTER TABLE messages ADD COLUMN usage {kind}"))


def _step_9(conn: Connection) -> None:
    # budget_tokens, a session setting of the service, leaves the strategy params for a column
    # of its own (issue 18). Each session's value moves unchanged; a value the API never
    # accepted (not an integer) stays in params, where nothing reads it, rather than be lost.
    conn.execute(text("ALTER TABLE sessions ADD COLUMN budget_tokens INTEGER"))
    sessions = Table(  # the columns this step reads and writes, frozen at v9
        "sessions",
        MetaData(),
        Column("id", String(40), primary_key=True),
        Column("params", JSONType, nullable=False),
        Column("budget_tokens", Integer, nullable=True),
    )
    # every session's params are read: JSON key tests differ between the backends, and this
    # runs once
    for session_id, params in conn.execute(select(sessions.c.id, sessions.c.params)).all():
        if not isinstance(params, dict) or "budget_tokens" not in params:
            continue
        budget = params["budget_tokens"]
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
            log.warning(
                "store: session %s keeps budget_tokens %r in its params: not an integer",
                session_id,
                budget,
            )
            continue
        rest = {k: v for k, v in params.items() if k != "budget_tokens"}
        conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(params=rest, budget_tokens=budget)
        )


STEPS: tuple[Step, ...] = (
    Step(2, "api_keys.last_used_at; index sessions(user_id, updated_at)", _step_2),
    Step(3, "personas keyed by (user_id, id): uploads are private to their uploader", _step_3),
    Step(4, "index messages(session_id, status, id) for the history cache check", _step_4),
    Step(5, "relationships (memory across sessions); index sessions(user_id, persona_id)", _step_5),
    Step(6, "messages.owner, messages.lease_until: leases on pending replies", _step_6),
    Step(7, "lorebooks and session_lorebooks (uploaded World Info, attached to sessions)", _step_7),
    Step(8, "messages.usage: a reply's token usage", _step_8),
    Step(9, "sessions.budget_tokens: moved out of the strategy params", _step_9),
)
