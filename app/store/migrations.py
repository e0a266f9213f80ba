"""Versioned schema migrations: a schema_version table and the runner of the ordered steps of
migration_steps.py.

A fresh database gets the current schema (models.Base.metadata.create_all) and is stamped with
CURRENT_VERSION. An existing one gets every step newer than its version applied, in order, in
one transaction (SQLite and PostgreSQL both have transactional DDL): a failed upgrade leaves the
database as it was. Steps only ever add or transform; a schema change never needs the user's
data deleted. To change the schema: change models.py, append a step to migration_steps.STEPS
that brings a database of the previous version to the same shape, and bump nothing else
(CURRENT_VERSION follows the list). tests/app/store/test_migrations.py checks that both paths
agree.
"""

from __future__ import annotations

import logging

from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from app.store.migration_steps import STEPS, Step, v1_metadata
from app.store.models import Base, SchemaVersion, utcnow

__all__ = [
    "CURRENT_VERSION",
    "STEPS",
    "Step",
    "create_schema_at",
    "migrate",
    "schema_version",
]

log = logging.getLogger(__name__)

# any constant: replicas starting together on one PostgreSQL take turns migrating
_PG_MIGRATION_LOCK = 0x6D656D656E746F

CURRENT_VERSION = STEPS[-1].version if STEPS else 1


def schema_version(conn: Connection) -> int | None:
    """The database's schema version; None for an empty database."""
    if not inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(
        select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).limit(1)
    ).scalar()


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(insert(SchemaVersion).values(version=version, applied_at=utcnow()))


def migrate(engine: Engine) -> int:
    """Bring the database to CURRENT_VERSION; returns it. Raises RuntimeError if the database
    is newer than this code (refuse rather than guess)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        version = schema_version(conn)
        if version is None:
            Base.metadata.create_all(conn)
            _stamp(conn, CURRENT_VERSION)
            log.info("store: created schema version %d", CURRENT_VERSION)
            return CURRENT_VERSION
        if version > CURRENT_VERSION:
            raise RuntimeError(
                f"the database schema is version {version}, newer than this Memento knows "
                f"({CURRENT_VERSION}); upgrade Memento instead of downgrading the database"
            )
        for step in STEPS:
            if step.version > version:
                log.info(
                    "store: migrating schema to version %d: %s", step.version, step.description
                )
                step.apply(conn)
                _stamp(conn, step.version)
        return CURRENT_VERSION


def create_schema_at(engine: Engine, version: int) -> None:
    """An empty database at an old schema version (for upgrade tests)."""
    if not 1 <= version <= CURRENT_VERSION:
        raise ValueError(f"schema version must be 1..{CURRENT_VERSION}, got {version}")
    with engine.begin() as conn:
        v1_metadata().create_all(conn)
        _stamp(conn, 1)
        for step in STEPS:
            if step.version <= version:
                step.apply(conn)
                _stamp(conn, step.version)
