"""Cross-session recall through memory/scope.py's ScopeView ranks exactly as searching each
session's own index and merging (the code before issue 19), on random multi-session corpora.
A hashing embedder stands in for the model: no MLX, real Chroma."""

from __future__ import annotations

import gc
import random
import weakref
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memory.bm25 import CorpusStats, query_weights
from memory.ranking import first_of_each_text, merge_top, rrf, spread_to_neighbours
from memory.recall import HybridRecaller
from memory.recall_params import CENTRING_RAMP, RecallParams
from memory.scope import SessionState, history_turns
from memory.types import ScopeSession, SessionInfo, StoredMessage
from memory.vector_index import VectorIndex

WORDS = [f"w{i}" for i in range(120)] + ["dog", "beagle", "lisbon", "hackathon", "garden"]
DIM = 32


class HashEmbedder:
    """A text's vector: the normalised sum of one fixed random vector per word."""

    name, dim = "hash-test", DIM

    def _vec(self, text: str) -> list[float]:
        v = np.zeros(DIM)
        for w in text.lower().split():
            v += np.random.default_rng(zlib.crc32(w.encode())).standard_normal(DIM)
        n = np.linalg.norm(v)
        return (v / n if n else v).tolist()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embed(texts)


def corpus(rng: random.Random, n_sessions: int) -> list[list[StoredMessage]]:
    out, next_id = [], 1
    for s in range(n_sessions):
        start = datetime(2024, 1, 1, 9, tzinfo=UTC) + timedelta(days=s * 3)
        msgs = []
        for i in range(rng.randint(1, 25)):  # fewer than k: no per-session cut to tie on
            text = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
            at = start + timedelta(minutes=i * rng.choice([1, 1, 2, 300]))
            role = "user" if i % 2 == 0 else "assistant"
            msgs.append(StoredMessage(id=next_id, role=role, content=text, tokens=1, created_at=at))
            next_id += 1
        out.append(msgs)
    return out


def reference(
    r: HybridRecaller,
    session: SessionInfo,
    query: str,
    history: list[StoredMessage],
    exclude: set[int],
    limit: int,
    scope: Sequence[ScopeSession],
) -> list[int]:
    """Recall as it was before ScopeView: each session searched alone, lists merged (the
    indexes are the recaller's own, synced by the recall just made)."""
    p = r.params
    srcs = []
    for s, h in [(session, history), *((o.session, o.history) for o in scope)]:
        st = r._state(s)
        turns = [m for m in h if m.role in ("user", "assistant") and m.content.strip()]
        pos = {m.id: i for i, m in enumerate(turns)}
        srcs.append((st, turns, pos, pos.keys() - exclude))
    rankings: list[tuple[Sequence[int], float]] = []
    corpus = CorpusStats.of((s[0].bm25 for s in srcs), query) if scope else None
    lists = [st.bm25.top_scored(query, p.lexical_k, ok, corpus) for st, _, _, ok in srcs]
    lexical = merge_top(lists, p.lexical_k)
    rankings.append((lexical, p.lexical_weight))
    own = srcs[0][0].bm25
    weights = query_weights(own.terms, query, corpus or CorpusStats.of([own], query))
    holder = {d: st.bm25 for st, _, pos, _ in srcs for d in pos}
    c = p.lexical_coverage
    coverage = (
        {d: 1 - c + c * holder[d].matched(d, weights) for d in lexical} if p.covers(query) else None
    )
    if p.dense_k:
        q = np.asarray(HashEmbedder()._vec(query), dtype=np.float32)
        # centred on the mean of every vector searched, summed here from the matrices
        mats = [st.dense.mat[: len(st.dense.ids)] for st, *_ in srcs if st.dense is not None]
        n = sum(len(m) for m in mats)
        mean = sum(m.astype(np.float64).sum(axis=0) for m in mats) / n
        q = (q - p.dense_centring * n / (n + CENTRING_RAMP) * mean).astype(np.float32)
        lists = [st.dense.top(q, p.dense_k, ok) for st, _, _, ok in srcs if st.dense is not None]
        rankings.append((merge_top(lists, p.dense_k), p.dense_weight))
    fused = rrf(rankings, p.rrf_k, [coverage])
    scores: dict[int, float] = {}
    texts: dict[int, str] = {}
    for _, turns, pos, ok in srcs:
        mine = {d: s for d, s in fused.items() if d in pos}
        if mine:
            for d, s in spread_to_neighbours(
                mine, turns, p.neighbour_weights, p.neighbour_gap_s, pos
            ).items():
                if d in ok:
                    scores[d], texts[d] = s, turns[pos[d]].content
    ranked = sorted(scores, key=lambda d: (-scores[d], d))
    return first_of_each_text(ranked, texts.__getitem__)[:limit]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("dense_k", [30, 7, 0])
async def test_scope_view_ranks_as_each_session_alone(
    tmp_path: Path, seed: int, dense_k: int
) -> None:
    rng = random.Random(seed)
    sessions = corpus(rng, 14)
    infos = [SessionInfo(id=f"s{i}", user_id="u", persona_id="p") for i in range(len(sessions))]
    r = HybridRecaller(
        VectorIndex.open(tmp_path, None, HashEmbedder()), RecallParams(dense_k=dense_k)
    )
    for info, msgs in zip(infos, sessions, strict=True):
        await r.observe(info, msgs)
    asker, own = infos[0], sessions[0]
    # another session's history without a turn its user made it forget (still indexed)
    forgotten = sessions[2][1:] if len(sessions[2]) > 1 else sessions[2]
    histories = [forgotten if i == 2 else s for i, s in enumerate(sessions)]
    scope = [
        ScopeSession(session=i, history=h) for i, h in zip(infos[1:], histories[1:], strict=True)
    ]
    all_ids = [m.id for s in sessions for m in s]
    last = None
    for n in range(12):
        query = " ".join(rng.choices(WORDS, k=rng.randint(1, 5)))
        exclude = {m.id for m in own[-3:]} | set(rng.sample(all_ids, 5))
        limit = rng.choice([3, 10, 200])
        got = await r.recall(asker, query, own, exclude, limit, scope)
        assert got == reference(r, asker, query, own, exclude, limit, scope), (n, query)
        view = r._views[("u", asker.id)]
        assert last is None or view is last  # nothing in the scope changed: the same view
        last = view
        if n == 5:  # a scope session changes: its view must be rebuilt
            extra = StoredMessage(
                id=10_000, role="user", content="beagle lisbon garden", tokens=1,
                created_at=histories[3][-1].created_at + timedelta(seconds=30),
            )  # fmt: skip
            histories[3] = [*histories[3], extra]
            await r.observe(infos[3], histories[3])
            scope[2] = ScopeSession(session=infos[3], history=histories[3])
            assert 10_000 in await r.recall(asker, "beagle lisbon", own, set(), 200, scope)
            assert r._views[("u", asker.id)] is not last
            last = r._views[("u", asker.id)]


def test_first_of_each_text_with_a_limit_is_the_same_prefix() -> None:
    rng = random.Random(5)
    texts = {
        i: rng.choice(["Hi!", "hi", "Good night 🌙", "good night", "A beagle."]) for i in range(40)
    }
    ranked = list(range(40))
    whole = first_of_each_text(ranked, texts.__getitem__)
    assert len(whole) == 3
    for limit in range(1, 6):
        assert first_of_each_text(ranked, texts.__getitem__, limit) == whole[:limit]


async def test_a_user_keeps_one_scope_view(tmp_path: Path) -> None:
    # sessions of one user asking in turn (the soak run's 40): each asker's view holds the
    # sessions the others' turns change, so it would never be fresh again; only the last
    # asker's is kept, and other users' views stay
    sessions = corpus(random.Random(7), 4)
    infos = [SessionInfo(id=f"s{i}", user_id="u", persona_id="p") for i in range(4)]
    vs = [SessionInfo(id=f"t{i}", user_id="v", persona_id="p") for i in range(2)]
    r = HybridRecaller(VectorIndex.open(tmp_path, None, HashEmbedder()))
    for info, msgs in [*zip(infos + vs, sessions + sessions[:2], strict=True)]:
        await r.observe(info, msgs)
    v_scope = [ScopeSession(session=vs[1], history=sessions[1])]
    await r.recall(vs[0], "w1 dog", sessions[0], set(), 5, v_scope)
    for asker in range(4):
        scope = [
            ScopeSession(session=infos[i], history=sessions[i]) for i in range(4) if i != asker
        ]
        await r.recall(infos[asker], "w1 dog", sessions[asker], set(), 5, scope)
        assert sorted(r._views) == [("u", infos[asker].id), ("v", "t0")]


async def test_a_scope_view_scores_the_sessions_vectors_where_they_lie(tmp_path: Path) -> None:
    # a copy held the scope's vectors twice (1.5 KB an E5 turn), made again whenever one of its
    # sessions changed: every turn of a user going round their sessions (the soak run)
    sessions = corpus(random.Random(3), 5)
    infos = [SessionInfo(id=f"s{i}", user_id="u", persona_id="p") for i in range(5)]
    r = HybridRecaller(VectorIndex.open(tmp_path, None, HashEmbedder()))
    for info, msgs in zip(infos, sessions, strict=True):
        await r.observe(info, msgs)
    scope = [
        ScopeSession(session=i, history=h) for i, h in zip(infos[1:], sessions[1:], strict=True)
    ]
    await r.recall(infos[0], "w1 dog", sessions[0], set(), 5, scope)
    view = r._views[("u", "s0")]
    for info in infos[1:]:
        dense = r._sessions[("u", info.id)].dense
        assert dense is not None
        assert any(np.shares_memory(m, dense.mat) for m in view.mats)


async def test_recall_keeps_no_message_of_a_history_alive(tmp_path: Path) -> None:
    # the history lists recall is given are the store's history cache's (app/store/history.py);
    # when that cache drops a session, its messages must go: a view of the list that held them
    # kept every cached session's messages alive, uncounted (the soak run, caches capped at
    # 2,000 messages and 8 MB: ~2,900 StoredMessages alive where the history cache held 2,000)
    history = corpus(random.Random(9), 1)[0]
    info = SessionInfo(id="s0", user_id="u", persona_id="p")
    r = HybridRecaller(VectorIndex.open(tmp_path, None, HashEmbedder()))
    await r.observe(info, history)
    await r.recall(info, "w1 dog", history, set(), 5)
    alive = [weakref.ref(m) for m in history[1:-1]]
    del history
    gc.collect()
    assert ("u", "s0") in r._sessions  # recall still caches the session's indexes
    assert [m() for m in alive] == [None] * len(alive)


def test_a_history_that_grows_extends_the_view() -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    # recall's turns: user and assistant messages with words (no system note, no blank)
    said = [("user", "hi"), ("assistant", "hello"), ("system", "a summary"), ("user", " ")]
    history = [
        StoredMessage.model_validate(
            {
                "id": i,
                "role": said[i % 4][0],
                "content": said[i % 4][1],
                "tokens": 1,
                "created_at": at,
            }
        )  # fmt: skip
        for i in range(1, 23)
    ]
    st = SessionState()
    history_turns(st, history[:10])
    for n in (10, 17, 17, 22):
        turns, pos, _ = history_turns(st, list(history[:n]))  # a new list, the same messages
        fresh, fresh_pos, _ = history_turns(SessionState(), history[:n])
        assert [id(m) for m in turns] == [id(m) for m in fresh]
        assert pos == fresh_pos
    assert st.view is not None and st.view.n == 22
