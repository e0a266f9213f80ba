"""`memento reindex [--session ID]`: rebuild the vector index from the stored messages.

The database is the source of truth; the vector index is derived from it. After a crash, a
restore from backup or a Chroma mishap, this puts back exactly what the service would have
indexed: every complete message (not forgotten) of every session whose strategy recalls
(vector, hybrid), and nothing else. Run it with the server stopped (embedded Chroma is not
meant to be written by two processes).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from app.config import Settings

err = Console(stderr=True)


@dataclass
class ReindexReport:
    sessions: int = 0  # sessions whose turns were (re)indexed
    messages: int = 0  # records written
    cleared: int = 0  # sessions whose records were removed (strategy does not recall)
    missing: list[str] = field(default_factory=list)  # --session ids not found


def uses_recall(strategy: str) -> bool:
    from memory import registry

    try:
        return bool(getattr(registry.get(strategy), "uses_recall", False))
    except KeyError:
        return False


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
    store: Any, index: Any, session_id: str | None = None, full: bool | None = None
) -> ReindexReport:
    """Rebuild the index entries of one session (by id, any user) or of all sessions.

    A full rebuild (`session_id` None) also drops records of sessions that no longer exist.
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
    elif full is not False:
        # orphans (sessions deleted while the index was unreachable) go with the collection
        await asyncio.to_thread(index.client.delete_collection, index.collection.name)
        index.collection = await asyncio.to_thread(
            index.client.get_or_create_collection,
            index.collection.name,
            embedding_function=None,
            metadata={"hnsw:space": "cosine"},
        )
    recaller = HybridRecaller(index)
    for s in sessions:
        info = session_info(s)
        await index.delete(info)
        if not uses_recall(s.strategy):
            report.cleared += 1
            continue
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
    return report


def cmd_reindex(args: argparse.Namespace) -> int:
    from app.blas import load_blas

    settings = Settings()
    load_blas()
    from app.llm.worker import MLXWorker
    from app.store.repo import Store
    from memory.embeddings import MLXEmbedder
    from memory.vector_index import VectorIndex

    store = Store(settings.resolved_database_url)
    worker = MLXWorker()
    try:
        embedder = MLXEmbedder(worker)
        index = VectorIndex.open(settings.data_dir, settings.chroma_url, embedder)
        with err.status("re-indexing..."):
            report = asyncio.run(reindex(store, index, args.session))
    finally:
        worker.shutdown()
        store.close()
    if report.missing:
        err.print(f"[red]no session {report.missing[0]!r}[/]")
        return 1
    err.print(
        f"re-indexed {report.messages} message(s) of {report.sessions} session(s); "
        f"{report.cleared} session(s) without vector recall cleared"
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("reindex", help="rebuild the vector index from the stored messages")
    p.add_argument("--session", default=None, metavar="ID", help="only this session")
    p.set_defaults(func=cmd_reindex)
