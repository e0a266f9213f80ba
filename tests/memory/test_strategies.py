"""Each strategy's behaviour on a deterministic fake engine (real counts: test_real_engine)."""

from __future__ import annotations

import pytest
from memory_fakes import SESSION, FakeLLM, FakeRecaller, conversation, deps, message, request

from memory import registry
from memory.base import MemoryStrategy, invalidate_summary
from memory.strategies._parts import RECALL_HEADER
from memory.summarizer import SUMMARY_HEADER
from memory.types import Context, ContextOverflowError, MemoryState, PinnedFact, StoredMessage


def kinds(ctx: Context) -> list[str]:
    return [p.kind for p in ctx.parts]


def part(ctx: Context, kind: str):  # type: ignore[no-untyped-def]
    return next((p for p in ctx.parts if p.kind == kind), None)


def ids(ctx: Context, kind: str) -> list[int]:
    p = part(ctx, kind)
    return [m.id for m in p.messages] if p else []  # type: ignore[misc]


async def chat(
    strategy: MemoryStrategy, turns: int, budget: int = 600, chars: int = 60, state=None
) -> tuple[list[Context], list[StoredMessage], MemoryState]:
    """Drive a strategy like the service does: assemble, reply, store, observe with the context."""
    history: list[StoredMessage] = []
    state = state or MemoryState()
    contexts = []
    for t in range(turns):
        text = f"Turn {t} from user " + "u" * chars
        ctx = await strategy.assemble(request(history, new=text, budget=budget, state=state))
        contexts.append(ctx)
        new = [
            message(2 * t + 1, "user", text, t // 5),
            message(2 * t + 2, "assistant", "r" * chars, t // 5),
        ]
        history = history + new
        state = await strategy.observe(SESSION, history, state, new, ctx)
    return contexts, history, state


def is_extension(a: Context, b: Context) -> bool:
    """b's prompt starts with all of a's messages except a's new message, which b keeps."""
    ma, mb = a.to_messages(), b.to_messages()
    return mb[: len(ma)] == ma


async def test_persona_and_new_message_alone_too_big_is_a_clear_overflow() -> None:
    for name in registry.available():
        strategy = registry.create(name, {}, deps())
        with pytest.raises(ContextOverflowError) as err:
            await strategy.assemble(request([], new="x" * 400, budget=100))
        assert err.value.budget == 100 and err.value.needed > 100
        assert "100 tokens" in str(err.value)


async def test_buffer_keeps_everything_or_refuses() -> None:
    strategy = registry.create("buffer", {}, deps())
    h = conversation(5)
    ctx = await strategy.assemble(request(h, budget=1000))
    assert kinds(ctx) == ["persona", "recent", "new"]
    assert ids(ctx, "recent") == [m.id for m in h]
    with pytest.raises(ContextOverflowError, match="buffer strategy never drops"):
        await strategy.assemble(request(conversation(50), budget=1000))


async def test_pinned_facts_are_one_system_message_after_the_persona() -> None:
    pinned = [PinnedFact(id="a", text="Dad's birthday is May 3.", source="persona"),
              PinnedFact(id="b", text="Speak in Korean 반말.", source="style")]  # fmt: skip
    state = MemoryState(pinned=[PinnedFact(id="c", text="Dad quit smoking.")])
    ctx = await registry.create("window", {}, deps()).assemble(
        request(conversation(2), state=state, pinned=pinned)
    )
    assert kinds(ctx) == ["persona", "pinned", "recent", "new"]
    text = part(ctx, "pinned").messages[0].content
    assert "- Dad's birthday is May 3.\n- Dad quit smoking." in text
    assert "Style rules (always follow them):\n- Speak in Korean 반말." in text


async def test_window_keeps_at_most_k_turns_and_evicts_in_chunks() -> None:
    strategy = registry.create("window", {"k": 10, "evict_to": 0.7}, deps())
    contexts, history, state = await chat(strategy, 40, budget=5000)
    turns = [len(ids(c, "recent")) // 2 for c in contexts]
    assert max(turns) == 10 and turns[10] == 10 and turns[11] == 7
    hits = sum(is_extension(a, b) for a, b in zip(contexts, contexts[1:], strict=False))
    # 7 -> 10 turns between evictions: 3 of every 4 prompts extend the previous one; a strict
    # sliding window would extend none once it holds k turns
    assert hits >= 0.7 * (len(contexts) - 1)
    strict = registry.create("window", {"k": 10, "evict_to": 1.0}, deps())
    contexts, _, _ = await chat(strict, 20, budget=5000)
    assert [len(ids(c, "recent")) // 2 for c in contexts][10:] == [10] * 10


async def test_token_buffer_stays_under_max_tokens_with_a_stable_prefix() -> None:
    strategy = registry.create("token_buffer", {"max_tokens": 300}, deps())
    contexts, history, state = await chat(strategy, 40, budget=2000)
    for c in contexts:
        assert part(c, "recent") is None or part(c, "recent").tokens <= 300
    hits = sum(is_extension(a, b) for a, b in zip(contexts, contexts[1:], strict=False))
    evictions = len(contexts) - 1 - hits
    assert 0 < evictions <= len(contexts) // 3
    assert state.buffer_start_id == ids(contexts[-1], "recent")[0]


async def test_the_budget_binds_before_max_tokens() -> None:
    strategy = registry.create("token_buffer", {"max_tokens": 10_000}, deps())
    contexts, _, _ = await chat(strategy, 30, budget=400)
    assert all(c.total_tokens <= 400 for c in contexts)
    assert len(ids(contexts[-1], "recent")) >= 2


async def test_summary_shows_the_summary_and_only_what_it_does_not_cover() -> None:
    llm = FakeLLM()
    strategy = registry.create("summary", {}, deps(llm))
    contexts, history, state = await chat(strategy, 6, budget=800)
    assert state.summary_covers == [m.id for m in history]
    assert state.summary.startswith("- user said Turn 0 from")
    last = contexts[-1]
    assert kinds(last) == ["persona", "summary", "new"]
    assert last.parts[1].messages[0].content.startswith(SUMMARY_HEADER)
    assert last.parts[1].covers == [m.id for m in history[:-2]]
    # the engine goes down: nothing is lost, the uncovered turns show verbatim
    strategy.deps.llm = FakeLLM(fail=True)
    new = [message(13, "user", "I moved to Busan."), message(14, "assistant", "Wow.")]
    failed = await strategy.observe(SESSION, history + new, state, new)
    assert failed.summary == state.summary and failed.summary_failures == 1
    ctx = await strategy.assemble(request(history + new, state=failed, budget=800))
    assert ids(ctx, "recent") == [13, 14]


async def test_summary_buffer_summarizes_exactly_what_left_the_buffer() -> None:
    strategy = registry.create(
        "summary_buffer", {"max_tokens": 200, "summarizer": "extractive"}, deps()
    )
    contexts, history, state = await chat(strategy, 30, budget=1000)
    for c in contexts[1:]:
        covered = part(c, "summary").covers if part(c, "summary") else []
        shown = covered + ids(c, "recent")
        assert shown == [m.id for m in history[: len(shown)]]  # no gap, no overlap
        assert part(c, "recent").tokens <= 200
        assert part(c, "summary") is None or part(c, "summary").tokens <= 256
    for a, b in zip(contexts, contexts[1:], strict=False):
        first_a, first_b = ids(a, "recent")[:1], ids(b, "recent")[:1]
        same_summary = part(a, "summary") == part(b, "summary")
        same_cut = (not first_a or first_a == first_b) and same_summary
        assert is_extension(a, b) == same_cut  # the prefix breaks only at an eviction
    hits = sum(is_extension(a, b) for a, b in zip(contexts, contexts[1:], strict=False))
    assert hits >= 0.5 * (len(contexts) - 1)  # ~43-token turns, 200-token buffer: evict ~1 in 2


async def test_summary_is_cut_to_the_budget_and_to_its_cap() -> None:
    big = " ".join(f"Fact {i} is here." for i in range(200))
    state = MemoryState(summary=big, summary_covers=[1, 2])
    strategy = registry.create("summary_buffer", {"summary_max_tokens": 100}, deps())
    ctx = await strategy.assemble(request([], state=state, budget=1000))
    s = part(ctx, "summary")
    assert 50 < s.tokens <= 100 and s.messages[0].content.endswith(".")
    ctx = await strategy.assemble(request([], state=state, budget=80))
    assert ctx.total_tokens <= 80


async def test_vector_recalls_relevant_turns_in_time_order_with_dates() -> None:
    recaller = FakeRecaller()
    params = {"buffer_tokens": 60, "recall_k": 3, "kept_share": 0, "recall_order": "time"}
    # kept_share 0: every find shows where new finds go
    strategy = registry.create("vector", params, deps(recaller=recaller))
    h = conversation(20, chars=40)
    h[4] = message(h[4].id, "user", "my dog Bo loves the beach", day=0)
    h[30] = message(h[30].id, "user", "Bo the dog got sick", day=1)
    state = MemoryState(forgotten=[h[10].id])
    ctx = await strategy.assemble(request(h, new="how is Bo the dog", state=state))
    assert kinds(ctx) == ["persona", "recent", "recalled", "new"]
    recalled = ids(ctx, "recalled")
    assert recalled == sorted(recalled) and h[4].id in recalled and h[30].id in recalled
    assert h[10].id not in recalled and not set(recalled) & set(ids(ctx, "recent"))
    lines = [m.content for m in part(ctx, "recalled").messages]
    assert lines[0].startswith(RECALL_HEADER + "On 1 November 2026:\n- User said: my dog Bo")
    assert any(line.startswith("On 2 November 2026:\n- User said: Bo the dog") for line in lines)
    assert h[10].id in recaller.queries[0][1]  # forgotten ids are excluded at the source too


@pytest.mark.parametrize("name", ["hybrid", "vector"])
async def test_recall_order_rank_shows_the_best_find_last(name: str) -> None:
    """`recall_order: rank`: what recall finds for the message reads least relevant first, so
    the best find is nearest the question (issue 12: a 135M model answers from what is near)."""
    params = {"buffer_tokens": 60, "recall_k": 3, "kept_share": 0, "recall_order": "rank"}
    h = conversation(20, chars=40)
    h[4] = message(h[4].id, "user", "my dog Bo loves the beach at dawn", day=0)
    h[30] = message(h[30].id, "user", "Bo the dog got sick", day=1)
    ctx = await registry.create(name, params, deps()).assemble(request(h, new="how is Bo the dog"))
    # FakeRecaller: h[4] and h[30] share "bo", "the" and "dog" (a tie: the newer ranks first)
    assert part(ctx, "recalled").ranked[:2] == [h[30].id, h[4].id]
    assert ids(ctx, "recalled")[-2:] == [h[4].id, h[30].id]
    lines = [m.content for m in part(ctx, "recalled").messages]
    assert lines[-1] == "On 2 November 2026:\n- User said: Bo the dog got sick"


async def test_recall_is_asked_without_the_two_names() -> None:
    recaller = FakeRecaller()
    strategy = registry.create("hybrid", {}, deps(recaller=recaller))
    h = conversation(6)
    req = request(h, new="Mina야, 아빠가 키우는 강아지 이름 뭐였지?")
    req = req.model_copy(update={"user_name": "아빠", "assistant_name": "Mina"})
    await strategy.assemble(req)
    assert recaller.queries[-1][0] == "키우는 강아지 이름 뭐였지?"


async def test_vector_neighbors_bring_the_reply_with_the_hit() -> None:
    strategy = registry.create(
        "vector",
        {
            "buffer_tokens": 0,
            "recall_k": 1,
            "neighbors": 1,
            "kept_share": 0,
            "recall_order": "time",
        },
        deps(),
    )
    h = conversation(10)
    h[6] = message(h[6].id, "user", "where is the red key", 0)
    ctx = await strategy.assemble(request(h, new="the red key?"))
    assert ids(ctx, "recalled") == [h[5].id, h[6].id, h[7].id]


@pytest.mark.parametrize("name", ["hybrid", "vector"])
async def test_the_first_finds_go_to_the_kept_slot_and_stay_there_after_the_reply(
    name: str,
) -> None:
    """With no kept turn yet (a new session, the first turn after an import), what the reply
    would keep shows in the kept slot at once, so the next prompt's head up to the recent
    buffer is the one this turn's prefill left in the KV cache (issue 13); the best find stays
    nearest the question."""
    params = {"buffer_tokens": 60, "recall_k": 6, "fresh_min_tokens": 0, "kept_min_room": 0}
    strategy = registry.create(name, params, deps())
    h = conversation(30, chars=40)
    h[4] = message(h[4].id, "user", "my dog Bo loves the beach", day=0)
    h[8] = message(h[8].id, "user", "Bo the dog is five", day=0)
    first = await strategy.assemble(request(h, new="how is Bo the dog", budget=900))
    order = kinds(first)
    assert order.index("kept") < order.index("recent") < order.index("recalled")
    # FakeRecaller ranks by words shared with the question: h[8] first, then h[4]
    assert h[8].id in ids(first, "recalled") and ids(first, "kept")
    assert h[4].id in ids(first, "kept") + ids(first, "recalled")
    assert not set(ids(first, "kept")) & set(ids(first, "recalled"))
    reply = [message(61, "user", "how is Bo the dog", 1), message(62, "assistant", "fine", 1)]
    state = await strategy.observe(SESSION, h + reply, MemoryState(), reply, first)
    assert state.kept[0] == ids(first, "kept")  # the reply's finds may join as a new chunk
    later = request(h + reply, new="and the cat?", budget=900, state=state)
    second = await strategy.assemble(later)
    before, after = part(first, "kept"), part(second, "kept")
    assert after.messages[: len(before.messages)] == before.messages
    assert second.parts[0] == first.parts[0] and second.parts[1].kind == "kept"


@pytest.mark.parametrize("name", ["hybrid", "vector"])
async def test_a_small_recall_room_keeps_nothing_and_shows_every_find_nearest_the_question(
    name: str,
) -> None:
    """Under kept_min_room the finds are not split between the kept slot and the end: the
    model answers from what is nearest the question, and a small room saves little by keeping
    (issue 12: LoCoMo F1 at budget 1,024)."""
    params = {"buffer_tokens": 60, "recall_k": 6, "fresh_min_tokens": 0}
    h = conversation(30, chars=40)
    h[4] = message(h[4].id, "user", "my dog Bo loves the beach", day=0)
    h[8] = message(h[8].id, "user", "Bo the dog is five", day=0)
    ask = request(h, new="how is Bo the dog", budget=900)
    split = await registry.create(name, {**params, "kept_min_room": 0}, deps()).assemble(ask)
    assert ids(split, "kept")  # the room (< 900) is split when the floor allows it
    strategy = registry.create(name, params, deps())  # kept_min_room 1,024 by default
    ctx = await strategy.assemble(ask)
    assert "kept" not in kinds(ctx)
    assert set(ids(split, "kept") + ids(split, "recalled")) <= set(ids(ctx, "recalled"))
    reply = [message(61, "user", "how is Bo the dog", 1), message(62, "assistant", "fine", 1)]
    state = await strategy.observe(SESSION, h + reply, MemoryState(), reply, ctx)
    assert state.kept == []
    # what a session kept in a larger room (or before the floor) goes after the next reply
    before = MemoryState(kept=[[h[2].id, h[3].id]])
    ctx = await strategy.assemble(request(h, new="how is Bo the dog", budget=900, state=before))
    assert ids(ctx, "kept") == [h[2].id, h[3].id]
    state = await strategy.observe(SESSION, h + reply, before, reply, ctx)
    assert state.kept == [] and state.kept_age == 0


@pytest.mark.parametrize("name", ["hybrid", "vector"])
async def test_recall_sentences_cuts_what_recall_finds_anew_and_keeps_it_whole(name: str) -> None:
    """A long find nearest the question shows as its sentence about the message (more finds
    in the room the model reads last); the same turn kept after the reply is whole again: a
    kept turn is the same text whatever the next message asks."""
    params = {"buffer_tokens": 60, "recall_k": 6, "recall_sentences": 1, "kept_share": 0}
    h = conversation(30, chars=40)
    long = "Hi there. My dog Bo loves the beach. We went twice. It rained."
    h[4] = message(h[4].id, "user", long, day=0)
    ctx = await registry.create(name, params, deps()).assemble(
        request(h, new="does Bo like the beach", budget=900)
    )
    shown = {m.id: m.content for m in part(ctx, "recalled").messages}
    assert shown[h[4].id].endswith("- User said: … My dog Bo loves the beach. …")
    whole = await registry.create(name, {**params, "recall_sentences": 0}, deps()).assemble(
        request(h, new="does Bo like the beach", budget=900)
    )
    assert long in next(m.content for m in part(whole, "recalled").messages if m.id == h[4].id)
    kept = {**params, "kept_share": 0.9, "fresh_min_tokens": 0, "kept_min_room": 0}
    first = await registry.create(name, kept, deps()).assemble(
        request(h, new="does Bo like the beach", budget=900)
    )
    assert all("…" not in m.content for m in part(first, "kept").messages)


@pytest.mark.parametrize("name", ["hybrid", "vector"])
@pytest.mark.parametrize("budget", [700, 1000])
async def test_in_a_live_chat_each_questions_best_find_shows_beside_the_kept_turns(
    name: str, budget: int
) -> None:
    """Kept turns fill most of the recall room; a question's best find must still show, not
    wait for a compaction (before: the telling turn showed for 12-18 of these 24 questions)."""
    words = [f"kw{i}" for i in range(60)]
    h: list[StoredMessage] = []
    for t in range(120):
        h.append(message(2 * t + 1, "user", f"I told you about {words[t % 60]} thing " + "u" * 60))
        h.append(message(2 * t + 2, "assistant", "ok " + "a" * 60))
    strategy = registry.create(name, {}, deps())
    state = MemoryState()
    missed = []
    for q in range(24):
        word = words[(q * 37) % 60]  # every question about another turn
        ctx = await strategy.assemble(request(h, new=f"{word} thing", budget=budget, state=state))
        told = [
            m for k in ("kept", "recalled") for m in (part(ctx, k).messages if part(ctx, k) else [])
        ]
        if not any(f"{word} thing" in m.content for m in told):
            missed.append(q)
        new = [message(len(h) + 1, "user", f"{word} thing"), message(len(h) + 2, "assistant", "so")]
        h = h + new
        state = await strategy.observe(SESSION, h, state, new, ctx)
    assert missed == []


async def test_vector_observe_indexes_new_messages_but_not_forgotten_ones() -> None:
    recaller = FakeRecaller()
    strategy = registry.create("vector", {}, deps(recaller=recaller))
    new = conversation(2)
    await strategy.observe(SESSION, new, MemoryState(forgotten=[new[1].id]), new)
    assert recaller.indexed == [new[0].id, new[2].id, new[3].id]


@pytest.mark.parametrize("name", ["hybrid", "vector"])
async def test_a_small_budget_leaves_recall_its_share(name: str) -> None:
    """Where the summary and the buffer caps would take the whole room, recall keeps
    recall_min_share of it (0: the buffer and the summary first, as before)."""
    h = conversation(40, chars=60)
    h[6] = message(h[6].id, "user", "my dog Bo loves the beach", day=0)
    state = MemoryState(summary="Dad likes tea. " * 40, summary_covers=[m.id for m in h[:4]])
    budget = 300 if name == "hybrid" else 250
    room = {}
    for share in (0.0, 0.5):
        strategy = registry.create(name, {"recall_min_share": share, "kept_share": 0}, deps())
        ctx = await strategy.assemble(
            request(h, new="how is Bo the dog", budget=budget, state=state)
        )
        assert ctx.total_tokens <= budget
        room[share] = {p.kind: p.tokens for p in ctx.parts}
    shown = sum(room[0.5].get(k, 0) for k in ("summary", "recent", "recalled"))
    assert room[0.5]["recalled"] >= 0.45 * shown > room[0.0].get("recalled", 0)
    assert room[0.5]["recent"] > 0  # the last exchange still shows
    assert h[6].id in ids(ctx, "recalled")


async def test_hybrid_has_every_part_in_order() -> None:
    strategy = registry.create(
        "hybrid",
        {"buffer_tokens": 150, "summarizer": "extractive", "recall_k": 4, "kept_min_room": 0},
        deps(),
    )
    pinned = [PinnedFact(id="a", text="Speak softly.", source="style")]
    history: list[StoredMessage] = []
    state = MemoryState()
    every = ["persona", "pinned", "kept", "summary", "recent", "recalled", "new"]
    full = []
    for t in range(25):
        req = request(history, new=f"Turn {t} question", budget=900, state=state, pinned=pinned)
        ctx = await strategy.assemble(req)
        new = [
            message(2 * t + 1, "user", f"Turn {t} " + "u" * 50),
            message(2 * t + 2, "assistant", "ok " * 15),
        ]
        history = history + new
        state = await strategy.observe(SESSION, history, state, new, ctx)
        assert ctx.total_tokens <= 900
        assert kinds(ctx) == [k for k in every if k in kinds(ctx)]
        shown = [ids(ctx, k) for k in ("kept", "recent", "recalled")]
        assert sum(map(len, shown)) == len(set().union(*shown))  # no turn shown twice
        full += [t] if kinds(ctx) == every else []
    # every other turn: the recent buffer's pair ebbs and flows, and what recall finds when
    # it holds the newest pair is all kept already
    assert full and full[-1] >= 23


async def test_assemble_and_observe_do_not_mutate_their_inputs() -> None:
    for name in registry.available():
        strategy = registry.create(
            name, {"summarizer": "extractive"} if "summ" in name or name == "hybrid" else {}, deps()
        )
        h = conversation(30)
        state = MemoryState(summary="- x.", summary_covers=[1, 2], buffer_start_id=3)
        req = (
            request(h, state=state, budget=2000)
            if name != "buffer"
            else request(h, state=state, budget=4000)
        )
        before = req.model_dump_json()
        await strategy.assemble(req)
        assert req.model_dump_json() == before
        snapshot = state.model_dump_json()
        await strategy.observe(SESSION, h, state, h[-2:])
        assert state.model_dump_json() == snapshot


def test_invalidate_summary_only_when_a_covered_message_changed() -> None:
    state = MemoryState(summary="- x.", summary_covers=[1, 2], summary_failures=2)
    assert invalidate_summary(state, [5]) is state
    cleared = invalidate_summary(state, [2])
    assert cleared.summary == "" and cleared.summary_covers == [] and cleared.summary_failures == 0


async def test_a_failing_summarizer_still_moves_the_cut_and_retries_later() -> None:
    strategy = registry.create("summary_buffer", {"max_tokens": 120}, deps(FakeLLM(fail=True)))
    h = conversation(10)
    state = await strategy.observe(SESSION, h, MemoryState(), h)
    assert state.buffer_start_id is not None and state.buffer_start_id > h[0].id
    assert state.summary == "" and state.summary_covers == [] and state.summary_failures == 1
    strategy.deps.llm = FakeLLM()  # the engine is back: the pending messages get summarized
    state = await strategy.observe(SESSION, h, state, [])
    cut = [m.id for m in h].index(state.buffer_start_id)
    assert state.summary_covers == [m.id for m in h[:cut]] and state.summary_failures == 0


async def test_a_failing_vector_index_does_not_lose_the_state(caplog) -> None:  # type: ignore[no-untyped-def]
    class Broken(FakeRecaller):
        async def observe(self, session, messages):  # type: ignore[no-untyped-def]
            raise RuntimeError("chroma is down")

    strategy = registry.create("vector", {"buffer_tokens": 50}, deps(recaller=Broken()))
    h = conversation(10)
    state = await strategy.observe(SESSION, h, MemoryState(), h)
    assert state.buffer_start_id is not None
    assert "vector index update failed" in caplog.text


async def test_pinned_facts_count_toward_the_overflow() -> None:
    pinned = [PinnedFact(id=str(i), text="A long fact to remember. " * 10) for i in range(5)]
    strategy = registry.create("hybrid", {}, deps())
    with pytest.raises(ContextOverflowError, match="pinned facts"):
        await strategy.assemble(request([], budget=200, pinned=pinned))


async def test_an_empty_new_message_skips_recall() -> None:
    recaller = FakeRecaller()
    strategy = registry.create("vector", {}, deps(recaller=recaller))
    ctx = await strategy.assemble(request(conversation(5), new="   "))
    assert recaller.queries == [] and kinds(ctx)[-1] == "new"
