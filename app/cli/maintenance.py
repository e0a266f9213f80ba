"""`memento reindex [--session ID]`: rebuild the vector index from the stored messages.

The database is the source of truth; the vector index is derived from it. After a crash, a
restore from backup or a Chroma mishap, this puts back exactly what the service would have
indexed: every complete message (not forgotten) of every session, whatever its strategy (a
later session of the user recalls from it: memory scopes), and nothing else. Run it with the
server stopped (embedded Chroma is not
meant to be written by two processes).

It is also how an index moves to another embedder (MEMENTO_EMBEDDER): the service refuses an
index built by another one, and a full reindex re-embeds every message with the configured one.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from app.config import Settings

err = Console(stderr=True)


@dataclass
class ReindexReport:
    sessions: int = 0  # sessions whose turns were (re)indexed
    messages: int = 0  # records written
    missing: list[str] = field(default_factory=list)  # --session ids not found


def all_sessions(store: Any) -> list[Any]:
    sessions = []
    for user in store.list_users():
        offset = 0
        while True:
            page = store.list_sessions(user.id, limit=500, offset=offset)
            sessions += page
            if len(page) < 500:
                break
            offset += 500
    return sessions


async def reindex(
    store: Any,
    index: Any,
    session_id: str | None = None,
    full: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache_bytes: int = 256 * 1024 * 1024,  # Settings.recall_cache_bytes
) -> ReindexReport:
    """Rebuild the index entries of one session (by id, any user) or of all sessions.

    A full rebuild (`session_id` None) starts a new collection, named for the index's embedder,
    so it also drops records of sessions that no longer exist and vectors of another embedder.
    A partial one needs the index to be the configured embedder's (EmbedderMismatch otherwise).
    `progress(done, total)` is called after each session.
    """
    from app.session_memory import session_info
    from app.store.errors import NotFound
    from memory.recall import HybridRecaller

    report = ReindexReport()
    sessions = all_sessions(store)
    if session_id is not None:
        sessions = [s for s in sessions if s.id == session_id]
        if not sessions:
            report.missing.append(session_id)
            return report
    if session_id is None and full is not False:
        # orphans (sessions deleted while the index was unreachable) go with the collection
        await index.reset()
    else:
        await asyncio.to_thread(index.verify_embedder)
    recaller = HybridRecaller(index, max_cache_bytes=cache_bytes)
    for done, s in enumerate(sessions, 1):
        if progress is not None and done > 1:
            progress(done - 1, len(sessions))
        info = session_info(s)
        await index.delete(info)
        try:
            history = await asyncio.to_thread(store.history, s.user_id, s.id)
            state, _ = await asyncio.to_thread(store.get_memory, s.user_id, s.id)
        except NotFound:  # deleted meanwhile
            continue
        forgotten = set(state.forgotten)
        keep = [m for m in history if m.id not in forgotten and m.content.strip()]
        if keep:
            await recaller.observe(info, keep)
        report.sessions += 1
        report.messages += len(keep)
    if progress is not None and sessions:
        progress(len(sessions), len(sessions))
    return report


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = Settings()
    from app import data_lock

    lock = None
    if data_lock.needs_lock(settings):
        # the embedded index is the running server's: rebuilding it under it would race it
        try:
            lock = data_lock.acquire(settings.data_dir)
        except data_lock.DataDirBusy as busy:
            err.print(f"[red]cannot reindex:[/] {busy}; stop the server first")
            return 2
    try:
        return _reindex(args, settings)
    finally:
        if lock is not None:
            lock.release()


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from app.blas import load_blas

    load_blas()
    from app.llm.worker import MLXWorker
    from app.store.repo import Store
    from memory.embedder_choice import make_embedder
    from memory.vector_index import EmbedderMismatch, VectorIndex

    store = Store(
        settings.resolved_database_url, history_cache_messages=settings.history_cache_messages
    )
    worker = MLXWorker()
    try:
        embedder = make_embedder(settings.embedder, worker)
        index = VectorIndex.open(
            settings.data_dir, settings.chroma_url, embedder, check_embedder=False
        )
        with err.status(f"re-indexing with {embedder.name}...") as status:

            def progress(done: int, total: int) -> None:
                status.update(f"re-indexing with {embedder.name}: {done}/{total} session(s)")

            report = asyncio.run(
                reindex(
                    store,
                    index,
                    args.session,
                    progress=progress,
                    cache_bytes=settings.recall_cache_bytes,
                )
            )
    except EmbedderMismatch as exc:
        err.print(f"[red]{exc}[/] (a partial reindex cannot change the embedder)")
        return 1
    finally:
        worker.shutdown()
        store.close()
    if report.missing:
        err.print(f"[red]no session {report.missing[0]!r}[/]")
        return 1
    err.print(f"re-indexed {report.messages} message(s) of {report.sessions} session(s)")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("reindex", help="rebuild the vector index from the stored messages")
    p.add_argument("--session", default=None, metavar="ID", help="only this session")
    p.set_defaults(func=cmd_reindex)
