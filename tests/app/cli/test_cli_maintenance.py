"""`reindex`: the vector index rebuilt from the database, with real Chroma and MiniLM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.cli.maintenance import reindex
from app.session_memory import session_info
from app.store.records import NewMessage
from app.store.repo import Store
from memory.embeddings import MLXEmbedder
from memory.vector_index import IndexRecord, VectorIndex


@pytest.fixture
def index(tmp_path: Path, mlx_worker: object) -> VectorIndex:
    return VectorIndex.open(tmp_path, None, MLXEmbedder(mlx_worker))  # type: ignore[arg-type]


def turns(store: Store, user: str, sid: str, n: int) -> list[int]:
    msgs = [
        NewMessage(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} of {sid}")
        for i in range(n)
    ]
    return [m.id for m in store.add_messages(user, sid, msgs)]


def test_reindex_rebuilds_every_session_and_nothing_else(store: Store, index: VectorIndex) -> None:
    alice = store.get_or_create_user("alice").id
    bob = store.get_or_create_user("bob").id
    vec = store.create_session(alice, "assistant", "vector", {})
    hyb = store.create_session(bob, "assistant", "hybrid", {})
    buf = store.create_session(alice, "assistant", "buffer", {})
    gone = store.create_session(bob, "assistant", "vector", {})
    vec_ids = turns(store, alice, vec.id, 6)
    hyb_ids = turns(store, bob, hyb.id, 4)
    buf_ids = turns(store, alice, buf.id, 2)
    gone_ids = turns(store, bob, gone.id, 2)
    # a forgotten turn stays out; an interrupted empty reply is not history
    state, _ = store.get_memory(alice, vec.id)
    store.save_memory(alice, vec.id, state.model_copy(update={"forgotten": [vec_ids[0]]}))
    store.add_message(alice, vec.id, "assistant", "", status="interrupted")

    async def scenario() -> None:
        # the index as a crash could leave it: half of one session, stale records of another,
        # and a session deleted while the index was unreachable
        records = [IndexRecord(i, "user", "stale", vec.created_at) for i in buf_ids]
        await index.upsert(session_info(buf), records)
        await index.upsert(
            session_info(gone), [IndexRecord(gone_ids[0], "user", "x", gone.created_at)]
        )
        await index.upsert(
            session_info(vec), [IndexRecord(vec_ids[1], "user", "x", vec.created_at)]
        )
        store.delete_session(bob, gone.id)

        report = await reindex(store, index)
        assert report.sessions == 3 and report.missing == []
        assert await index.ids(session_info(vec)) == set(vec_ids[1:])
        assert await index.ids(session_info(hyb)) == set(hyb_ids)
        # a session that does not recall is indexed too: later sessions recall from it
        assert await index.ids(session_info(buf)) == set(buf_ids)
        assert await index.ids(session_info(gone)) == set()
        # the rebuilt records are real embeddings: recall by meaning works on them
        hits = await index.query(session_info(vec), f"turn 3 of {vec.id}", k=1)
        assert hits[0][0] == vec_ids[3]

        # one session only
        await index.delete(session_info(hyb))
        report = await reindex(store, index, hyb.id)
        assert report.sessions == 1 and await index.ids(session_info(hyb)) == set(hyb_ids)
        assert (await reindex(store, index, "ses_nope")).missing == ["ses_nope"]

    asyncio.run(scenario())


def test_reindex_moves_an_index_to_another_embedder(
    store: Store, tmp_path: Path, mlx_worker: object
) -> None:
    from memory.e5 import E5Embedder
    from memory.vector_index import EmbedderMismatch

    dad = store.get_or_create_user("dad").id
    ses = store.create_session(dad, "pippa", "hybrid", {})
    said = ["우리 강아지 이름은 콩이야", "오늘 회사에서 힘들었어", "내일 비 온대"]
    ids = [
        m.id
        for m in store.add_messages(dad, ses.id, [NewMessage(role="user", content=t) for t in said])
    ]
    info = session_info(ses)

    async def scenario() -> None:
        old = VectorIndex.open(tmp_path, None, MLXEmbedder(mlx_worker))  # type: ignore[arg-type]
        assert (await reindex(store, old)).messages == 3  # the MiniLM index of a release before
        e5 = E5Embedder(mlx_worker)  # type: ignore[arg-type]
        with pytest.raises(EmbedderMismatch):
            VectorIndex.open(tmp_path, None, e5)
        index = VectorIndex.open(tmp_path, None, e5, check_embedder=False)
        with pytest.raises(EmbedderMismatch):  # one session cannot change the embedder
            await reindex(store, index, ses.id)
        seen: list[tuple[int, int]] = []
        report = await reindex(store, index, progress=lambda d, t: seen.append((d, t)))
        assert report.messages == 3 and seen[-1] == (1, 1)
        assert index.stored_embedder() == (e5.name, 384)
        assert await index.ids(info) == set(ids)  # nothing lost
        hits = await index.query(info, "강아지 이름이 뭐였지?", k=1)
        assert hits[0][0] == ids[0]
        VectorIndex.open(tmp_path, None, e5)  # the service starts again

    asyncio.run(scenario())
