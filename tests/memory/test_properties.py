"""The rules every strategy keeps, over random histories, budgets, states and message sizes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from memory_fakes import SESSION, T0, FakeLLM, FakeRecaller, request

from memory import registry
from memory.base import MemoryDeps
from memory.budget import is_turn_start
from memory.lore.model import ActiveBook, LoreBook
from memory.persona import with_examples
from memory.strategies._kept import REBUILD_AFTER, chunk_ids
from memory.strategies._parts import pinned_text, speaker_and_text
from memory.types import (
    PART_ORDER,
    RECALLED_KINDS,
    Context,
    ContextMessage,
    ContextOverflowError,
    ContextPart,
    MemoryState,
    PinnedFact,
    ScopeSession,
    SessionInfo,
    StoredMessage,
)

WORDS = ["dog", "tea", "Busan", "mother", "exam", "red", "key", "rain", "piano", "x"]

PARAMS = {
    "buffer": st.just({}),
    "window": st.fixed_dictionaries({"k": st.integers(1, 30), "evict_to": st.floats(0.1, 1.0)}),
    "token_buffer": st.fixed_dictionaries(
        {"max_tokens": st.integers(1, 3000), "evict_to": st.floats(0.1, 1.0)}
    ),
    "summary": st.fixed_dictionaries({"summary_max_tokens": st.integers(16, 600)}),
    "summary_buffer": st.fixed_dictionaries(
        {"max_tokens": st.integers(1, 3000), "summary_max_tokens": st.integers(16, 600)}
    ),
    "vector": st.fixed_dictionaries(
        {
            "buffer_tokens": st.integers(0, 1000),
            "recall_k": st.integers(1, 40),
            "neighbors": st.integers(0, 2),
        }
    ),
    "hybrid": st.fixed_dictionaries(
        {
            "buffer_tokens": st.integers(0, 1000),
            "summary_max_tokens": st.integers(16, 400),
            "recall_k": st.integers(1, 40),
            "recall_max_tokens": st.one_of(st.none(), st.integers(1, 800)),
            "neighbors": st.integers(0, 2),
        }
    ),
}

text = st.lists(st.sampled_from(WORDS), max_size=120).map(" ".join)
# imported turns name their speaker ("Caroline: ..."), Korean personas call the user 아빠
LABELS = ["", "", "Caroline: ", "Joanna Lee: ", "아빠: ", "Dad: "]
labelled = st.tuples(st.sampled_from(LABELS), text).map("".join)
USER_NAMES = ["User", "아빠", "Dad"]


@st.composite
def histories(draw: st.DrawFn) -> list[StoredMessage]:
    n = draw(st.integers(0, 80))
    roles = draw(
        st.lists(
            st.sampled_from(["user", "assistant", "user", "assistant", "system"]),
            min_size=n,
            max_size=n,
        )
    )
    out, mid = [], 0
    for i, role in enumerate(roles):
        mid += draw(st.integers(1, 3))  # ids ascend with gaps (deleted messages)
        content = draw(labelled)
        out.append(
            StoredMessage(
                id=mid, role=role, content=content, tokens=len(content) // 4 + 4,
                created_at=T0 + timedelta(hours=6 * i),
            )
        )  # fmt: skip
    return out


@st.composite
def states(draw: st.DrawFn, history: list[StoredMessage]) -> MemoryState:
    all_ids = [m.id for m in history]
    covered = draw(st.integers(0, len(all_ids)))
    return MemoryState(
        summary=draw(st.lists(st.sampled_from(WORDS), max_size=300).map(lambda w: ". ".join(w))),
        summary_covers=all_ids[:covered],
        buffer_start_id=draw(st.one_of(st.none(), st.sampled_from(all_ids or [1]))),
        forgotten=draw(st.lists(st.sampled_from(all_ids), max_size=5)) if all_ids else [],
        pinned=[
            PinnedFact(id=str(i), text=t) for i, t in enumerate(draw(st.lists(text, max_size=2)))
        ],
        # any ids, stored or not (a deleted turn, a session left the scope): never shown then
        kept=draw(st.lists(st.lists(st.integers(1, 300), min_size=1, max_size=6), max_size=3)),
    )


def check(ctx: Context, req, llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    assert ctx.budget == req.budget
    assert ctx.total_tokens <= req.budget
    assert ctx.total_tokens == llm.count(ctx.to_messages())  # the exact templated total
    order = [PART_ORDER.index(p.kind) for p in ctx.parts]
    assert order == sorted(order) and len(set(order)) == len(order)
    persona = ctx.parts[0]
    assert persona.kind == "persona"
    # the prompt, then the example dialogue: whole, or what fits beside the message
    shown = [
        n
        for n in range(len(req.example_dialogue) + 1)
        if persona.messages[0].content == with_examples(req.system_prompt, req.example_dialogue[:n])
    ]
    assert shown, persona.messages[0].content
    n = shown[-1]
    if n < len(req.example_dialogue):
        more = with_examples(req.system_prompt, req.example_dialogue[: n + 2 - n % 2])
        fixed = [p for p in ctx.parts if p.kind in ("pinned", "new")]
        alone = llm.count_overhead() + sum(p.tokens for p in fixed)
        assert alone + llm.count_message({"role": "system", "content": more}) > req.budget
    assert ctx.parts[-1].kind == "new" and ctx.parts[-1].messages[0].content == req.new_message
    for p in ctx.parts:
        assert p.tokens == sum(llm.count_message(m) for m in p.to_messages())
    forgotten = set(req.state.forgotten)
    kept = [m for m in req.history if m.id not in forgotten]
    by_id = {m.id: m for m in kept}
    elsewhere = {m.id: s.session.id for s in req.scope for m in s.history}
    scoped = {m.id: m for s in req.scope for m in s.history}
    shown: list[int] = []
    for p in ctx.parts:
        if p.kind in ("recent", *RECALLED_KINDS):
            for m in p.messages:
                # a stored, not forgotten, message of this session or one of its scope
                source = by_id.get(m.id) or (scoped.get(m.id) if p.kind != "recent" else None)  # type: ignore[arg-type]
                assert source is not None
                if p.kind != "recent":  # a note: "- On <date> <speaker> said: <text>"
                    who, said = speaker_and_text(source, req.user_name, req.assistant_name)
                    assert m.content.endswith(f" {who} said: {said}")
                else:
                    assert m.content == source.content
                assert m.session_id == elsewhere.get(m.id)  # type: ignore[arg-type]
                shown.append(m.id)  # type: ignore[arg-type]
        else:
            assert all(m.id is None for m in p.messages)
    assert len(shown) == len(set(shown))  # nothing twice
    found = next((p for p in ctx.parts if p.kind == "recalled"), None)
    if found:  # earlier sessions first, each group the best last (recall_order: rank)
        best_last = list(reversed(found.ranked))
        for group in (
            [m.id for m in found.messages if m.session_id],
            [m.id for m in found.messages if not m.session_id],
        ):
            assert group == [i for i in best_last if i in set(group)]
    kept_part = next((p for p in ctx.parts if p.kind == "kept"), None)
    if kept_part:  # chunks of the state's, in its order, each in time order
        assert sum(kept_part.chunks) == len(kept_part.messages)
        chunks = iter(req.state.kept)
        got = chunk_ids(kept_part)
        if not all(any(set(g) <= set(c) for c in chunks) for g in got):
            # none of the state's showed: this turn's finds go to the kept slot at once
            assert len(got) == 1
    relationship = next((p for p in ctx.parts if p.kind == "relationship"), None)
    if relationship:  # within its own cap, a prefix of the lines in their order of importance
        assert relationship.tokens <= req.relationship_tokens
        assert relationship.tokens * 3 <= req.budget  # never most of a small window
        n = len(relationship.messages)
        assert relationship.messages == req.relationship[:n]
    recent = [m.id for p in ctx.parts if p.kind == "recent" for m in p.messages]
    if recent:  # a suffix of the history starting on a turn boundary (pairs never split)
        start = [m.id for m in kept].index(recent[0])  # type: ignore[arg-type]
        assert recent == [m.id for m in kept[start:]]
        assert is_turn_start(kept, start)
    summary = next((p for p in ctx.parts if p.kind == "summary"), None)
    if summary:
        assert summary.covers == req.state.summary_covers
    lore = next((p for p in ctx.parts if p.kind == "lore"), None)
    if lore:  # within its cap, each entry once, shown or said to be dropped, never both
        assert lore.tokens <= req.lore_tokens and len(lore.fired) == len(lore.messages)
        entries = [f.entry for f in (*lore.fired, *lore.dropped)]
        assert len(entries) == len(set(entries)) and all(f.why for f in lore.fired)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(PARAMS)),
    data=st.data(),
    history=histories(),
    budget=st.integers(10, 4000),
    system=text,
    new=text,
    persona_facts=st.lists(text, max_size=3),
    other=histories(),
    lines=st.lists(text, max_size=4),
    examples=st.lists(text, max_size=6),
    relationship_tokens=st.integers(0, 400),
    user_name=st.sampled_from(USER_NAMES),
    lore_entries=st.lists(st.tuples(st.sampled_from(WORDS), st.integers(0, 5), text), max_size=6),
    lore_tokens=st.integers(0, 600),
)
def test_every_strategy_keeps_the_rules(  # type: ignore[no-untyped-def]
    name,
    data,
    history,
    budget,
    system,
    new,
    persona_facts,
    other,
    lines,
    examples,
    relationship_tokens,
    user_name,
    lore_entries,
    lore_tokens,
) -> None:
    params = data.draw(PARAMS[name])
    state = data.draw(states(history))
    pinned = [PinnedFact(id=f"p{i}", text=t, source="persona") for i, t in enumerate(persona_facts)]
    llm = FakeLLM()
    strategy = registry.create(name, params, MemoryDeps(llm=llm, recaller=FakeRecaller()))
    req = request(history, new=new, budget=budget, state=state, system=system, pinned=pinned)
    req.example_dialogue = [
        f"{user_name if i % 2 == 0 else 'Pippa'}: {t}" for i, t in enumerate(examples)
    ]
    # another session of the same user (memory scope): ids past this session's own
    offset = 1 + max((m.id for m in history), default=0)
    earlier = SessionInfo(id="s-earlier", user_id=SESSION.user_id, persona_id=SESSION.persona_id)
    moved = [
        m.model_copy(update={"id": m.id + offset, "session_id": earlier.id})
        for m in other
        if m.role != "system"
    ]
    req.scope = [ScopeSession(session=earlier, history=moved)] if moved else []
    req.relationship = [
        ContextMessage(role="system", content=f"- {t}", session_id="s-earlier") for t in lines
    ]
    req.relationship_tokens = relationship_tokens
    req.user_name, req.assistant_name = user_name, "Pippa"
    book = {  # a lorebook keyed on the words the messages use
        "scan_depth": 4,
        "entries": [
            {"keys": [k], "content": c or k, "priority": p, "id": i}
            for i, (k, p, c) in enumerate(lore_entries)
        ],
    }
    req.lore = [ActiveBook(id="b", book=LoreBook.of(book))]
    req.lore_tokens = lore_tokens
    pinned_block = pinned_text([*pinned, *state.pinned])
    shown = [("system", system), ("system", pinned_block), ("user", new)]
    fixed = llm.count_overhead() + sum(
        llm.count_message({"role": r, "content": c}) for r, c in shown if c is not None
    )
    try:
        ctx = asyncio.run(strategy.assemble(req))
    except ContextOverflowError as err:
        event("overflow")
        assert err.budget == budget and err.needed > budget
        if name != "buffer":  # only the fixed parts can overflow (buffer: all of history too)
            assert fixed > budget and err.needed == fixed
        return
    assert fixed <= budget
    check(ctx, req, llm)
    event(f"{name}: " + "+".join(p.kind for p in ctx.parts[1:-1] if p.kind != "pinned"))
    if any(m.session_id for p in ctx.parts if p.kind == "recalled" for m in p.messages):
        event("recalled a turn of another session")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(PARAMS)),
    data=st.data(),
    sizes=st.lists(st.integers(0, 600), min_size=2, max_size=30),
    budget=st.integers(200, 2000),
)
def test_rules_hold_over_a_conversation_with_observe(name, data, sizes, budget) -> None:  # type: ignore[no-untyped-def]
    params = data.draw(PARAMS[name])
    if name in ("summary", "summary_buffer", "hybrid"):
        params = {**params, "summarizer": "extractive"}
    llm = FakeLLM()
    strategy = registry.create(name, params, MemoryDeps(llm=llm, recaller=FakeRecaller()))
    history: list[StoredMessage] = []
    state = MemoryState()

    def part(ctx: Context | None, kind: str) -> ContextPart | None:
        return next((p for p in ctx.parts if p.kind == kind), None) if ctx else None

    async def run() -> None:
        nonlocal history, state
        last: Context | None = None
        compacted: int | None = None
        for t, size in enumerate(sizes):
            req = request(history, new="dog " * (size // 8), budget=budget, state=state)
            try:
                ctx = await strategy.assemble(req)
            except ContextOverflowError:
                assert name == "buffer"
                return
            check(ctx, req, llm)
            # kept recalled turns grow by chunks appended after them, or lose their newest
            # chunks when the room shrank: either way the text before them and theirs up to
            # there stays byte-identical, except when compacted: at most once per
            # REBUILD_AFTER replies (or when none fit: then none are shown)
            kept, before = part(ctx, "kept"), part(last, "kept")
            n = min(len(kept.messages), len(before.messages)) if kept and before else 0
            if n and kept.messages[:n] != before.messages[:n]:  # type: ignore[union-attr]
                assert compacted is None or t - compacted >= REBUILD_AFTER
                compacted = t
            last = ctx
            new = [
                StoredMessage(id=2 * t + 1, role="user", content=req.new_message,
                              tokens=len(req.new_message) // 4 + 4,
                              created_at=T0 + timedelta(hours=t)),
                StoredMessage(id=2 * t + 2, role="assistant", content="tea " * (size // 4),
                              tokens=len("tea " * (size // 4)) // 4 + 4,
                              created_at=T0 + timedelta(hours=t)),
            ]  # fmt: skip
            history = history + new
            state = await strategy.observe(SESSION, history, state, new, ctx)
            covered = set(state.summary_covers)
            assert len(covered) == len(state.summary_covers)
            assert state.summary_failures == 0

    asyncio.run(run())
