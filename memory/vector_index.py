"""The vector index: past turns in chromadb, embedded by our embedder (never Chroma's own).

One collection, cosine space. The collection's metadata names the embedder that wrote it (name
and dimension); opening it with another embedder fails with EmbedderMismatch, which says to run
`memento reindex`: vectors of two models are never mixed or compared. Every record carries
user, persona and session ids; every query and delete filters on user AND session, so one
user's turns can never surface in another's context, even for identical text. Chroma's client
is blocking, so each call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from app import heap
from memory.types import SessionInfo

log = logging.getLogger(__name__)

COLLECTION = "memento_turns"
_BATCH = 256  # records per upsert; also bounded by the server's own max batch size
# A read of at least this many vectors trims the heap as it ends (app/heap.py): embedded Chroma
# peaks at ~10 KB of short-lived native memory per record returned, which glibc keeps resident
# in the reading thread's arena (a recall scope's reload, 5,850 records: 60 MB); a trim costs
# milliseconds, such a read hundreds.
TRIM_AFTER_ROWS = 1000


# Collections written before the embedder's name was stored hold MiniLM vectors: the only one.
LEGACY_EMBEDDER = ("sentence-transformers/all-MiniLM-L6-v2", 384)
EMBEDDER_KEY, DIM_KEY = "embedder", "embedder_dim"


class Embedder(Protocol):
    name: str  # the model's identity, stored with the vectors
    dim: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Stored turns."""
        ...

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Recall queries (asymmetric models such as E5 embed them differently)."""
        ...


class EmbedderMismatch(RuntimeError):
    """The collection was built by another embedder than the configured one."""

    def __init__(self, collection: str, stored: tuple[str, int], configured: tuple[str, int]):
        self.stored, self.configured = stored, configured
        super().__init__(
            f"the vector index {collection!r} holds vectors of {stored[0]} ({stored[1]} dims), "
            f"but the configured embedder is {configured[0]} ({configured[1]} dims). Run "
            "`memento reindex` with the server stopped to re-embed every stored message with "
            "the configured embedder (nothing is lost: the messages live in the database), or "
            "set MEMENTO_EMBEDDER back to the embedder that built the index."
        )


@dataclass(frozen=True)
class IndexRecord:
    """One stored turn as the index keeps it."""

    message_id: int
    role: str
    text: str  # the document: what was embedded
    created_at: datetime


def record_id(session_id: str, message_id: int) -> str:
    return f"{session_id}:{message_id}"


def _epoch(dt: datetime) -> float:
    # Naive datetimes are taken as UTC, the store's convention.
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _scope(session: SessionInfo) -> dict[str, Any]:
    return {"$and": [{"user_id": session.user_id}, {"session_id": session.id}]}


def _check_session(session: SessionInfo) -> None:
    for name in ("id", "user_id", "persona_id"):
        if not getattr(session, name):
            raise ValueError(f"session.{name} must be a non-empty string for the vector index")


class VectorIndex:
    """Async facade over one chromadb collection. Build it with `VectorIndex.open(...)`."""

    def __init__(
        self,
        client: Any,
        embedder: Embedder,
        collection: str = COLLECTION,
        check_embedder: bool = True,
    ) -> None:
        """`check_embedder=False` opens an index of another embedder, only to `reset()` it."""
        self.client = client
        self.embedder = embedder
        self.collection = self._get_or_create(collection)
        if check_embedder:
            self.verify_embedder()
        try:
            self.max_batch = min(_BATCH, int(client.get_max_batch_size()))
        except Exception:  # noqa: BLE001 - older/remote clients may not expose it
            self.max_batch = _BATCH

    @classmethod
    def open(
        cls,
        data_dir: Path | None,
        url: str | None,
        embedder: Embedder,
        collection: str = COLLECTION,
        check_embedder: bool = True,
    ) -> VectorIndex:
        """Embedded PersistentClient under `data_dir/chroma`, or a Chroma server at `url`."""
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(f"chroma url must look like http://host:port, got {url!r}")
            client = chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=ChromaSettings(anonymized_telemetry=False),
            )
        else:
            if data_dir is None:
                raise ValueError("the vector index needs a data_dir or a chroma url")
            path = Path(data_dir) / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
        return cls(client, embedder, collection, check_embedder)

    # -- the embedder's identity ---------------------------------------------------------------
    @property
    def identity(self) -> tuple[str, int]:
        return (self.embedder.name, int(self.embedder.dim))

    def _get_or_create(self, name: str) -> Any:
        # embedding_function=None: Chroma's default would download a model at run time. The
        # metadata is only written when the collection is created here.
        return self.client.get_or_create_collection(
            name,
            embedding_function=None,
            metadata={
                "hnsw:space": "cosine",
                EMBEDDER_KEY: self.identity[0],
                DIM_KEY: self.identity[1],
            },
        )

    def stored_embedder(self) -> tuple[str, int] | None:
        """The embedder whose vectors the collection holds; None when it holds none."""
        if not self.collection.count():
            return None
        meta = self.collection.metadata or {}
        if EMBEDDER_KEY in meta:
            return str(meta[EMBEDDER_KEY]), int(meta.get(DIM_KEY, 0))
        return LEGACY_EMBEDDER

    def verify_embedder(self) -> None:
        """Raise EmbedderMismatch unless the collection is (or, empty, becomes) this embedder's."""
        stored = self.stored_embedder()
        if stored is not None and stored != self.identity:
            raise EmbedderMismatch(self.collection.name, stored, self.identity)
        meta = self.collection.metadata or {}
        if (meta.get(EMBEDDER_KEY), meta.get(DIM_KEY)) != self.identity:
            # An empty collection, or MiniLM's from before names were stored: name it now.
            # Chroma refuses "hnsw:space" in modify() even unchanged; the space stays as is.
            rest = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
            self.collection.modify(
                metadata={**rest, EMBEDDER_KEY: self.identity[0], DIM_KEY: self.identity[1]}
            )

    async def reset(self) -> None:
        """Drop every record and start an empty collection named for this embedder (a full
        reindex: the database is the source of truth)."""
        name = self.collection.name
        await asyncio.to_thread(self.client.delete_collection, name)
        self.collection = await asyncio.to_thread(self._get_or_create, name)

    # -- writes -------------------------------------------------------------------------------
    async def upsert(
        self,
        session: SessionInfo,
        records: Sequence[IndexRecord],
        embeddings: np.ndarray | Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Embed (unless `embeddings` are given, one row per record) and store, batched."""
        _check_session(session)
        if not records:
            return
        if embeddings is None:
            embeddings = await self.embedder.embed([r.text for r in records])
        if len(embeddings) != len(records):
            raise ValueError(f"{len(embeddings)} embeddings for {len(records)} records")
        emb = np.asarray(embeddings, dtype=np.float32)
        for s in range(0, len(records), self.max_batch):
            chunk = records[s : s + self.max_batch]
            await asyncio.to_thread(
                self.collection.upsert,
                ids=[record_id(session.id, r.message_id) for r in chunk],
                embeddings=emb[s : s + self.max_batch],
                documents=[r.text for r in chunk],
                metadatas=[
                    {
                        "user_id": session.user_id,
                        "persona_id": session.persona_id,
                        "session_id": session.id,
                        "message_id": int(r.message_id),
                        "role": r.role,
                        "created_at": _epoch(r.created_at),
                    }
                    for r in chunk
                ],
            )

    async def delete(self, session: SessionInfo, message_ids: Sequence[int] | None = None) -> None:
        """Delete the given turns of the session, or all of them when `message_ids` is None."""
        _check_session(session)
        if message_ids is None:
            await asyncio.to_thread(self.collection.delete, where=_scope(session))
            return
        ids = [record_id(session.id, int(m)) for m in message_ids]
        for s in range(0, len(ids), self.max_batch):
            # The scope filter too: an id alone could name another user's session of the same id.
            await asyncio.to_thread(
                self.collection.delete, ids=ids[s : s + self.max_batch], where=_scope(session)
            )

    # -- reads --------------------------------------------------------------------------------
    def _read_vectors(self, **get: Any) -> Any:
        """collection.get(**get) in a worker thread; a large read then hands the native memory
        it freed back to the OS (TRIM_AFTER_ROWS)."""
        res = self.collection.get(**get)
        if len(res["ids"]) >= TRIM_AFTER_ROWS:
            heap.trim()
        return res

    async def query(
        self,
        session: SessionInfo,
        text: str | None = None,
        k: int = 10,
        embedding: Sequence[float] | np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The k nearest turns of this session: [(message_id, cosine distance)], nearest first."""
        _check_session(session)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if embedding is None:
            if not text:
                raise ValueError("query needs a non-empty text or an embedding")
            embedding = (await self.embedder.embed_query([text]))[0]
        res = await asyncio.to_thread(
            self.collection.query,
            query_embeddings=[np.asarray(embedding, dtype=np.float32)],
            n_results=k,
            where=_scope(session),
            include=["metadatas", "distances"],
        )
        metas = (res.get("metadatas") or [[]])[0] or []
        dists = (res.get("distances") or [[]])[0] or []
        return [(int(m["message_id"]), float(d)) for m, d in zip(metas, dists, strict=True)]

    async def count(self, session: SessionInfo) -> int:
        _check_session(session)
        res = await asyncio.to_thread(self.collection.get, where=_scope(session), include=[])
        return len(res["ids"])

    async def ids(self, session: SessionInfo) -> set[int]:
        """Message ids of the session present in the index."""
        _check_session(session)
        res = await asyncio.to_thread(
            self.collection.get, where=_scope(session), include=["metadatas"]
        )
        return {int(m["message_id"]) for m in res["metadatas"] or []}

    async def documents(self, session: SessionInfo) -> dict[int, str]:
        """message id -> indexed document text, for the session's turns in the index."""
        _check_session(session)
        res = await asyncio.to_thread(
            self.collection.get, where=_scope(session), include=["metadatas", "documents"]
        )
        metas = res["metadatas"] or []
        docs = res["documents"] or []
        return {int(m["message_id"]): d for m, d in zip(metas, docs, strict=True)}

    async def load(
        self, session: SessionInfo, message_ids: Sequence[int] | None = None
    ) -> tuple[list[int], list[str], np.ndarray]:
        """Turns of the session (all, or those of `message_ids` that are indexed): message ids,
        documents and embeddings (n x dim)."""
        _check_session(session)
        by_id = {}
        if message_ids is not None:
            if not message_ids:
                return [], [], np.zeros((0, self.embedder.dim), np.float32)
            by_id = {"ids": [record_id(session.id, int(m)) for m in message_ids]}
        res = await asyncio.to_thread(
            self._read_vectors,
            where=_scope(session),
            include=["metadatas", "documents", "embeddings"],
            **by_id,
        )
        metas = res["metadatas"] or []
        ids = [int(m["message_id"]) for m in metas]
        emb = res.get("embeddings")
        if emb is None or len(ids) == 0:
            return ids, list(res["documents"] or []), np.zeros((0, self.embedder.dim), np.float32)
        return ids, list(res["documents"] or []), np.asarray(emb, dtype=np.float32)

    async def load_sessions(
        self, sessions: Sequence[SessionInfo]
    ) -> dict[str, tuple[list[int], list[str], np.ndarray]]:
        """load() of several sessions of ONE user in one query (a recall over a user's other
        sessions would otherwise pay a round trip per session): session id -> (message ids,
        documents, embeddings). Sessions without vectors map to empty results."""
        if not sessions:
            return {}
        for s in sessions:
            _check_session(s)
        user = sessions[0].user_id
        if any(s.user_id != user for s in sessions):
            raise ValueError("load_sessions takes the sessions of one user")
        ids = [s.id for s in sessions]
        where = {"$and": [{"user_id": user}, {"session_id": {"$in": ids}}]}
        res = await asyncio.to_thread(
            self._read_vectors, where=where, include=["metadatas", "documents", "embeddings"]
        )
        metas = res["metadatas"] or []
        docs = res["documents"] or []
        emb = res.get("embeddings")
        rows: dict[str, list[int]] = {sid: [] for sid in ids}
        for i, m in enumerate(metas):
            rows[str(m["session_id"])].append(i)
        matrix = np.asarray(emb, dtype=np.float32) if emb is not None and len(metas) else None
        out = {}
        for sid, idx in rows.items():
            vectors = (
                matrix[idx]
                if matrix is not None and idx
                else np.zeros((0, self.embedder.dim), np.float32)
            )
            out[sid] = ([int(metas[i]["message_id"]) for i in idx], [docs[i] for i in idx], vectors)
        return out
