"""HybridRecaller on real MiniLM (MLX worker) and a real embedded Chroma."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.llm.worker import MLXWorker
from memory.bm25 import BM25
from memory.embeddings import MLXEmbedder
from memory.recall import (
    TURN_BYTES,
    DenseCache,
    HybridRecaller,
    RecallParams,
    cjk_share,
    spread_to_neighbours,
)
from memory.types import SessionInfo, StoredMessage
from memory.vector_index import VectorIndex

ALICE = SessionInfo(id="sess-a", user_id="alice", persona_id="p")
BOB = SessionInfo(id="sess-b", user_id="bob", persona_id="p")
DAY1 = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
DAY2 = datetime(2023, 6, 20, 9, 0, tzinfo=UTC)

FILLER = [
    "How was your weekend?",
    "Pretty quiet, I mostly read and slept.",
    "Did you watch the game last night?",
    "No, I fell asleep early.",
    "The weather has been lovely lately.",
    "Yes, we had lunch in the garden.",
    "Work has been busy this month.",
    "I hope it calms down soon.",
]
FACTS = [
    "What did you do on Saturday?",  # 9: the question before the answer
    "I went to the Zyxcorp hackathon in Lisbon.",  # 10: rare words, BM25's strength
    "That sounds exciting!",  # 11
    "Also, we finally got a dog from the shelter.",  # 12: dense finds "puppy"/"pet"
    "What breed is it?",  # 13
    "A beagle, he loves long walks.",  # 14
]


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, inner: MLXEmbedder) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.texts = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return await self.inner.embed(texts)

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embed(texts)


@pytest.fixture(scope="module")
def minilm(mlx_worker: MLXWorker) -> Iterator[MLXEmbedder]:
    yield MLXEmbedder(mlx_worker)


@pytest.fixture
def embedder(minilm: MLXEmbedder) -> CountingEmbedder:
    return CountingEmbedder(minilm)


def history(texts: list[str], first_id: int = 1, start: datetime = DAY1) -> list[StoredMessage]:
    return [
        StoredMessage(
            id=first_id + i,
            role="user" if i % 2 == 0 else "assistant",
            content=t,
            tokens=len(t.split()),
            created_at=start + timedelta(seconds=30 * i),
        )
        for i, t in enumerate(texts)
    ]


def conversation() -> list[StoredMessage]:
    return history(FILLER) + history(FACTS, first_id=len(FILLER) + 1, start=DAY2)


@pytest.fixture
def recaller(tmp_path: Path, embedder: CountingEmbedder) -> HybridRecaller:
    return HybridRecaller(VectorIndex.open(tmp_path, None, embedder))


async def test_lexical_and_dense_hits_both_rank_first(recaller: HybridRecaller) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist)
    rare = await recaller.recall(ALICE, "Where was the Zyxcorp event?", hist, set(), 3)
    assert rare[0] == 10
    paraphrase = await recaller.recall(ALICE, "Do they have a pet puppy?", hist, set(), 3)
    assert 12 in paraphrase[:2] or 14 in paraphrase[:2]


async def test_neighbours_of_a_hit_come_along(recaller: HybridRecaller) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist)
    ranked = await recaller.recall(ALICE, "Zyxcorp hackathon", hist, set(), 4)
    assert ranked[0] == 10
    assert {9, 11} <= set(ranked[:4])  # the question before it and the reply after it
    # The neighbour window stops at the sitting boundary: turn 8 is a month earlier.
    plain = RecallParams(neighbour_weights=(0.5, 0.25), lexical_k=1, dense_k=0)
    alone = HybridRecaller(recaller.index, plain)
    got = await alone.recall(ALICE, "what did you do on Saturday", hist, set(), 10)
    assert got[0] == 9 and 8 not in got and 10 in got


async def test_a_text_said_again_is_recalled_once(recaller: HybridRecaller) -> None:
    """Copies of one text rank alike; only the best placed one is kept, so the rest of the top
    is free for turns that say something else."""
    said = ["Good night, Pippa!", "Night night!"] * 4 + ["I named the puppy Choco."]
    hist = history([*said, "good night pippa", "Sleep well."])
    await recaller.observe(ALICE, hist)
    ranked = await recaller.recall(ALICE, "Good night Pippa", hist, set(), 5)
    nights = [i for i in ranked if hist[i - 1].content.casefold().startswith("good night")]
    assert len(nights) == 1, [hist[i - 1].content for i in ranked]
    assert len(ranked) == len({hist[i - 1].content.casefold().strip("!") for i in ranked})


async def test_exclude_limit_and_unknown_ids(recaller: HybridRecaller) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist)
    ranked = await recaller.recall(ALICE, "Zyxcorp in Lisbon", hist, {10, 9}, 5)
    assert 10 not in ranked and 9 not in ranked and len(ranked) <= 5
    # Only what the caller's history holds comes back (e.g. a deleted turn is never shown).
    short = [m for m in hist if m.id != 10]
    assert 10 not in await recaller.recall(ALICE, "Zyxcorp in Lisbon", short, set(), 14)
    assert await recaller.recall(ALICE, "anything", hist, {m.id for m in hist}, 5) == []


async def test_users_never_see_each_others_turns(recaller: HybridRecaller) -> None:
    a = conversation()
    b = history(["I went to the Zyxcorp hackathon in Lisbon.", "Nice."], first_id=100)
    await recaller.observe(ALICE, a)
    await recaller.observe(BOB, b)
    got = await recaller.recall(BOB, "Zyxcorp hackathon in Lisbon", b, set(), 10)
    assert set(got) == {100, 101}
    # The vector index alone, too: Bob's identical sentence never answers Alice's query.
    hits = await recaller.index.query(ALICE, "I went to the Zyxcorp hackathon in Lisbon.", k=50)
    assert {i for i, _ in hits} == {m.id for m in a}


async def test_forget_some_and_all(recaller: HybridRecaller) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist)
    await recaller.forget(ALICE, [10])
    assert 10 not in await recaller.index.ids(ALICE)
    remaining = [m for m in hist if m.id != 10]
    assert 10 not in await recaller.recall(ALICE, "Zyxcorp Lisbon", remaining, set(), 14)
    await recaller.forget(ALICE)
    assert await recaller.index.count(ALICE) == 0


async def test_observe_is_idempotent_and_edits_reembed(
    recaller: HybridRecaller, embedder: CountingEmbedder
) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist)
    await recaller.recall(ALICE, "warm up", hist, set(), 1)  # loads the index state
    before = embedder.texts
    await recaller.observe(ALICE, hist)  # an import followed by a strategy's observe
    assert embedder.texts == before
    edited = hist[:]
    edited[1] = edited[1].model_copy(update={"content": "I adopted a parrot named Kiwi."})
    await recaller.observe(ALICE, [edited[1]])
    assert embedder.texts == before + 1
    got = await recaller.recall(ALICE, "parrot named Kiwi", edited, set(), 1)
    assert got == [2]


async def test_unobserved_turns_are_indexed_on_recall(
    recaller: HybridRecaller, embedder: CountingEmbedder
) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist[:4])
    got = await recaller.recall(ALICE, "Zyxcorp hackathon", hist, set(), 3)
    assert got[0] == 10
    assert await recaller.index.ids(ALICE) == {m.id for m in hist}


async def test_reopened_index_needs_no_reembedding(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    hist = conversation()
    await HybridRecaller(VectorIndex.open(tmp_path, None, embedder)).observe(ALICE, hist)
    after_import = embedder.texts
    fresh = HybridRecaller(VectorIndex.open(tmp_path, None, embedder))
    got = await fresh.recall(ALICE, "Zyxcorp hackathon", hist, set(), 3)
    assert got[0] == 10
    assert embedder.texts == after_import + 1  # just the query


async def test_a_replica_adopts_vectors_another_one_stored(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    hist = conversation()
    index = VectorIndex.open(tmp_path, None, embedder)  # one Chroma, as with a server
    a, b = HybridRecaller(index), HybridRecaller(index)
    await a.observe(ALICE, hist[:4])
    await b.recall(ALICE, "warm up", hist[:4], set(), 1)  # b has loaded the session
    await a.observe(ALICE, hist[4:])  # turns b never observed
    before = embedder.texts
    got = await b.recall(ALICE, "Zyxcorp hackathon", hist, set(), 3)
    assert got[0] == 10
    assert embedder.texts == before + 1  # just the query: the new turns' vectors were adopted
    edited = [*hist[:-1], hist[-1].model_copy(update={"content": "A poodle, actually."})]
    await b.recall(ALICE, "poodle", edited, set(), 1)
    assert embedder.texts == before + 3  # a stored vector of other text is not adopted


async def test_in_memory_scan_agrees_with_chroma(recaller: HybridRecaller) -> None:
    hist = conversation()
    await recaller.observe(ALICE, hist)
    # plain cosine, as Chroma ranks: no centring on the turns' mean
    plain = RecallParams(lexical_k=0, neighbour_weights=(), dense_centring=0)
    dense_only = HybridRecaller(recaller.index, plain)
    query = "a trip abroad for a tech event"
    ours = await dense_only.recall(ALICE, query, hist, set(), 5)
    chroma = [i for i, _ in await recaller.index.query(ALICE, query, k=5)]
    assert ours == chroma


class TableEmbedder:
    """Vectors by text, as a test lays them out (unlisted texts: the small-talk direction)."""

    name, dim = "table-test", 3

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = table

    def _vec(self, text: str) -> list[float]:
        v = np.asarray(self.table.get(text, (1.0, 0.0, 0.0)), dtype=np.float64)
        return (v / np.linalg.norm(v)).tolist()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # indexed documents carry their date ("[8 May 2023] text"): the text decides
        return [self._vec(t.split("] ", 1)[-1]) for t in texts]

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]


async def test_centring_lifts_the_telling_turn_over_small_talk(tmp_path: Path) -> None:
    # 100 small-talk turns share one direction, as "Okay, got it!"-like turns crowd together;
    # the question leans that way too (it is chat), but only the fact answers it
    fact, query = "I am allergic to buckwheat.", "What am I allergic to?"
    embedder = TableEmbedder({fact: (0.3, 1.0, 0.0), query: (1.0, 0.6, 0.0)})
    hist = history([f"small talk {i}" for i in range(100)] + [fact])
    index = VectorIndex.open(tmp_path, None, embedder)

    def dense_only(centring: float) -> HybridRecaller:
        params = RecallParams(lexical_k=0, neighbour_weights=(), dense_centring=centring)
        return HybridRecaller(index, params)

    plain, centred = dense_only(0.0), dense_only(1.0)
    await plain.observe(ALICE, hist)
    await centred.observe(ALICE, hist)
    assert 101 not in await plain.recall(ALICE, query, hist, set(), 3)  # cosine: small talk
    assert (await centred.recall(ALICE, query, hist, set(), 3))[0] == 101


async def test_a_question_ranks_below_the_statement_that_answers(
    recaller: HybridRecaller,
) -> None:
    """The turn that asks about a gift for the best friend shares more of the question's words
    than the one that names the friend; weighing questions less puts the answer first."""
    said = [
        "My best friend is Minsu, we met in school.",
        "Nice, I like Minsu.",
        *FILLER,
        "What should I buy my best friend for his birthday?",
        "Maybe a book?",
    ]
    hist = history(said)
    await recaller.observe(ALICE, hist)
    query = "Who is my best friend?"
    assert (await recaller.recall(ALICE, query, hist, set(), 3))[0] == 11  # default: whole
    half = HybridRecaller(recaller.index, RecallParams(question_weight=0.5))
    ranked = await half.recall(ALICE, query, hist, set(), 3)
    assert ranked[0] == 1, [hist[i - 1].content for i in ranked]


async def test_bad_arguments(recaller: HybridRecaller) -> None:
    hist = conversation()
    with pytest.raises(ValueError, match="limit must be"):
        await recaller.recall(ALICE, "x", hist, set(), 0)
    with pytest.raises(ValueError, match="non-empty query"):
        await recaller.recall(ALICE, "  ", hist, set(), 3)


# -- pure parts ---------------------------------------------------------------------------------


def test_dense_cache_put_replace_remove_top() -> None:
    cache = DenseCache(dim=3)
    eye = np.eye(3, dtype=np.float32)
    cache.put(list(range(1, 101)), np.tile(eye[2], (100, 1)))  # grows past its first capacity
    cache.put([7, 8], eye[:2])

    def top(q: np.ndarray, k: int, allowed: set[int]) -> list[int]:
        return [d for d, _ in cache.top(q, k, allowed)]

    assert cache.top(eye[0], 1, set(range(1, 101))) == [(7, pytest.approx(1.0))]
    cache.put([7], eye[1:2])  # replaced in place
    assert sorted(top(eye[1], 2, {7, 8})) == [7, 8]
    cache.remove(8)
    assert 8 not in cache.pos and len(cache.ids) == 99
    assert top(eye[1], 1, set(range(1, 101))) == [7]
    assert top(eye[1], 1, set(range(1, 101)) - {7}) != [7]  # excluded rows never return
    # the rows' sum follows every put, replacement and removal (recall centres on its mean)
    np.testing.assert_allclose(cache.total, cache.mat[: len(cache.ids)].sum(axis=0), atol=1e-5)


def test_dense_cache_is_sized_to_a_load_and_grows_by_a_quarter() -> None:
    # doubling left up to half of a matrix empty (the soak run's 40 sessions doubled at once)
    cache = DenseCache(dim=4)
    cache.put(list(range(1000)), np.ones((1000, 4), np.float32))  # a session loaded
    assert cache.nbytes == 1000 * 4 * 4
    cache.put([1000], np.ones((1, 4), np.float32))
    assert cache.nbytes == 1250 * 4 * 4


def test_dense_cache_rows_lent_out_never_change() -> None:
    # a scope view scores the sessions' rows where they lie (memory/scope.py), not a copy
    eye = np.eye(3, dtype=np.float32)
    cache = DenseCache(dim=3)
    cache.put([1, 2, 3], eye)
    lent = cache.rows()
    cache.put([4], eye[:1])  # past the lent rows: no copy needed
    assert np.shares_memory(lent, cache.mat)
    cache.put([2], eye[:1])  # replaced
    cache.remove(1)  # the last row moves into the hole
    cache.put([5], eye[2:])
    assert np.array_equal(lent, eye)
    assert not np.shares_memory(lent, cache.mat)
    assert [d for d, _ in cache.top(eye[0], 2, {2, 3, 4, 5})] in ([2, 4], [4, 2])
    lent = cache.rows()
    cache.remove(5)  # the last row: the next put writes where the lent one's last row is
    cache.put([6], eye[1:2])
    assert np.array_equal(lent[-1], eye[2])


def test_spread_to_neighbours_respects_the_gap() -> None:
    turns = history(["a", "b", "c"]) + history(["d", "e"], first_id=4, start=DAY2)
    out = spread_to_neighbours({3: 1.0}, turns, (0.5, 0.25), max_gap_s=3600)
    assert out == {3: 1.0, 2: 0.5, 1: 0.25}


async def test_cache_is_bounded_and_reloads_after_eviction(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    index = VectorIndex.open(tmp_path, None, embedder)
    tiny = HybridRecaller(index, max_cache_bytes=1)  # every other session gets evicted
    a, b = conversation(), history(["I went to the Zyxcorp hackathon.", "Nice."], first_id=100)
    await tiny.observe(ALICE, a)
    await tiny.observe(BOB, b)
    assert list(tiny._sessions) == [("bob", "sess-b")]
    before = embedder.texts
    assert (await tiny.recall(ALICE, "Zyxcorp hackathon", a, set(), 1)) == [10]
    assert embedder.texts == before + 1  # reloaded from Chroma, only the query embedded


async def test_cache_bytes_count_the_lexical_state(recaller: HybridRecaller) -> None:
    # BM25 postings and texts weigh about as much as the vectors: the cap counts both
    a = conversation()
    await recaller.observe(ALICE, a)
    st = recaller._sessions[("alice", "sess-a")]
    assert st.dense is not None and len(st.lexical) == len(a)
    assert st.nbytes == st.dense.nbytes + TURN_BYTES * len(a)


# -- fusion weights by the query's script (issue 11) ---------------------------------------------

KOREAN = [
    "오늘 날씨 진짜 좋다 ☀️",
    "산책 가기 딱 좋은 날이네요",
    "옆집 강아지가 밤새 짖어서 잠 설쳤어",
    "헐 피곤하겠다 ㅠㅠ",
    "우리 집 강아지 이름은 초코야 ㅋㅋ 완전 귀여워",
    "와 진짜? 기억해 둘게",
    "회사 일이 너무 많아서 힘들다",
    "오늘은 푹 쉬어요",
]


class DecoyEmbedder:
    """Dense noise at its worst: the query and the filler share one vector, the turns that
    answer ("초코", "Zyxcorp") an orthogonal one, so dense ranks the answer last."""

    name, dim = "decoy", 4

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += texts
        return [
            [0.0, 1.0, 0.0, 0.0] if "초코" in t or "Zyxcorp" in t else [1.0, 0, 0, 0] for t in texts
        ]

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embed(texts)


async def test_a_hangul_query_follows_bm25_when_dense_is_noise(tmp_path: Path) -> None:
    hist = history(KOREAN)
    embedder = DecoyEmbedder()
    index = VectorIndex.open(tmp_path, None, embedder)
    plain = {"neighbour_weights": ()}
    now = HybridRecaller(index, RecallParams(**plain))
    await now.observe(ALICE, hist)
    bm25 = BM25()
    for m in hist:
        bm25.add(m.id, now.document(m))
    query = "우리 강아지 이름이 뭐였지?"
    expected = bm25.top(query, 8)
    assert expected[0] == 5  # "우리 집 강아지 이름은 초코야"
    embedded = len(embedder.texts)
    assert await now.recall(ALICE, query, hist, set(), 8) == expected
    assert len(embedder.texts) == embedded  # dense weight 0: the query is not even embedded
    # With the English dense weight, the noise buries BM25's hit (what issue 11 measured).
    equal = HybridRecaller(index, RecallParams(cjk_dense_weight=1.0, **plain))
    assert (await equal.recall(ALICE, query, hist, set(), 8))[0] != 5


async def test_the_default_cjk_dense_weight_is_the_embedders(tmp_path: Path) -> None:
    hist = history(KOREAN)
    embedder = DecoyEmbedder()
    embedder.cjk_dense_weight = 1.0  # type: ignore[attr-defined]  # "I read Korean"
    index = VectorIndex.open(tmp_path, None, embedder)
    plain = {"neighbour_weights": ()}
    recaller = HybridRecaller(index, RecallParams(**plain))
    await recaller.observe(ALICE, hist)
    query = "우리 강아지 이름이 뭐였지?"
    embedded = len(embedder.texts)
    assert (await recaller.recall(ALICE, query, hist, set(), 8))[0] != 5  # dense took part
    assert len(embedder.texts) == embedded + 1
    # RecallParams' own weight still wins over the embedder's
    off = HybridRecaller(index, RecallParams(cjk_dense_weight=0.0, **plain))
    assert (await off.recall(ALICE, query, hist, set(), 8))[0] == 5


async def test_a_latin_query_is_fused_as_before(tmp_path: Path) -> None:
    hist = conversation()
    index = VectorIndex.open(tmp_path, None, DecoyEmbedder())
    default, old = HybridRecaller(index), HybridRecaller(index, RecallParams(cjk_dense_weight=1))
    await default.observe(ALICE, hist)
    for query in ("Where was the Zyxcorp event?", "what did you do on Saturday", "a dog?"):
        assert await default.recall(ALICE, query, hist, set(), 14) == await old.recall(
            ALICE, query, hist, set(), 14
        )


def test_fusion_weights_of_latin_queries_are_recall_params_own() -> None:
    latin = [
        "When did Caroline go to the LGBTQ support group?",
        "Qu'est-ce que Mélanie a peint en 2022 ? Ça coûte 30 €",
        "Straße, naïve café, São Paulo, Łódź",
        "🐶🐶 !!! 123",  # no letters at all
        "Did 초코 bark?",  # a Korean name in an English question
    ]
    for params in (RecallParams(), RecallParams(dense_weight=0.7, lexical_weight=1.3)):
        for q in latin:
            assert params.fusion_weights(q) == (params.dense_weight, params.lexical_weight), q
    assert RecallParams().dense_weight == 1.0 and RecallParams().lexical_weight == 1.0


def test_fusion_weights_of_cjk_queries() -> None:
    assert RecallParams().fusion_weights("강아지 이름?", 0.6) == (0.6, 1.0)  # the embedder's
    assert RecallParams().fusion_weights("강아지 이름?") == (0.0, 1.0)  # English-only's
    p = RecallParams(cjk_dense_weight=0.25, lexical_weight=2.0)
    for q in (
        "우리 강아지 이름이 뭐였지?",
        "Pippa야, 아빠가 키우는 강아지 이름 뭐라 그랬더라?",
        "犬の名前は何だっけ？",
        "我家小狗叫什么名字？",
        "ㅋㅋㅋ 초코 ㅠㅠ",
    ):
        assert p.fusion_weights(q) == (0.25, 2.0), q
    # Code-switched, a Latin content word MiniLM can match: the dense weight stays.
    assert p.fusion_weights("우리 puppy 이름이 뭐였지?") == (1.0, 2.0)
    assert cjk_share("abc 가나다") == 0.5 and cjk_share("123 !") == 0.0


class DishEmbedder:
    """Dense that understands the question: "favourite dish" is the stew, small talk is
    nearer it than "Time flies" is."""

    name, dim = "dish", 4

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [
            [1.0, 0, 0, 0] if "stew" in t or "dish" in t else [0, 0, 1.0, 0] if "flies" in t
            else [0.5, 0.5, 0.5, 0.5]
            for t in texts
        ]  # fmt: skip

    async def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embed(texts)


async def test_a_bm25_hit_on_a_minor_word_of_the_query_counts_for_its_share(
    tmp_path: Path,
) -> None:
    # "time" is all the question shares with a turn ("all-time"); the telling turn shares no
    # word with it, and only dense finds it
    hist = history(
        ["Time flies so fast.", "Your grandma's kimchi stew. Nothing beats it.", *FILLER]
    )
    index = VectorIndex.open(tmp_path, None, DishEmbedder())
    plain = {"neighbour_weights": (), "dense_k": 2}
    query = "What's my all-time favourite dish?"
    whole = HybridRecaller(index, RecallParams(lexical_coverage=0.0, **plain))
    await whole.observe(ALICE, hist)
    # counted whole, the one-word hit ties with dense's first and wins on its id
    assert (await whole.recall(ALICE, query, hist, set(), 3))[:2] == [1, 2]
    share = HybridRecaller(index, RecallParams(**plain))
    assert (await share.recall(ALICE, query, hist, set(), 3))[0] == 2
    # a Korean query's hits count whole (RecallParams.covers)
    assert not RecallParams().covers("내가 제일 좋아하는 음식이 뭐라고 했지?")
    assert RecallParams().covers(query) and not RecallParams(lexical_coverage=0).covers(query)
