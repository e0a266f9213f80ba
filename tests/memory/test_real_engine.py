"""Every strategy against the real tokenizer: the templated prompt is exactly what was counted."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from memory_fakes import SESSION, T0, FakeRecaller, request

from memory import registry
from memory.base import MemoryDeps
from memory.lore.model import ActiveBook, LoreBook
from memory.summarizer import LLMSummarizer, update_summary
from memory.types import ContextOverflowError, MemoryState, PinnedFact, StoredMessage

SAMPLES = [
    "Hi dad! I got an A on my math exam today.",
    "아빠, 오늘 학교에서 친구랑 싸웠어. 기분이 안 좋아 😢",
    "Remember: our dog Bo sees the vet on Friday at 3 pm.",
    "def f(x):\n    return x ** 2  # why does this overflow?",
    "ok",
    "I'm moving to Busan next spring, the flat is near Haeundae beach. " * 3,
    "  leading and trailing spaces  ",
    "Ünïcödé — “quotes”, tabs\tand\nnewlines\n\n",
]

PARAMS = {
    "buffer": {},
    "window": {"k": 6},
    "token_buffer": {"max_tokens": 300},
    "summary": {"summarizer": "extractive"},
    "summary_buffer": {"max_tokens": 300, "summarizer": "extractive", "summary_max_tokens": 120},
    "vector": {"buffer_tokens": 120, "recall_k": 12, "neighbors": 1},
    "hybrid": {"buffer_tokens": 150, "summarizer": "extractive", "recall_k": 12},
}


# a lorebook whose keys the samples use (Korean with particles, a name, a sticky entry, a
# recursion): the lore part is counted exactly too
LORE = ActiveBook(
    id="persona:p1",
    book=LoreBook.of(
        {
            "recursive_scanning": True,
            "entries": [
                {"keys": ["아빠"], "content": "아빠 is Minho, a baker in Busan. 🥖", "id": 1},
                {
                    "keys": ["Busan"],
                    "content": "Busan: a port city; Haeundae is its beach.",
                    "id": 2,
                    "extensions": {"sticky": 4},
                },
                {
                    "keys": ["Bo"],
                    "content": "Bo is the family's old beagle.\nShe hates the vet.",
                    "id": 3,
                    "priority": 3,
                },
            ],
        }
    ),
)


def stored(engine, i: int, role: str, content: str) -> StoredMessage:  # type: ignore[no-untyped-def]
    return StoredMessage(
        id=i,
        role=role,  # type: ignore[arg-type]
        content=content,
        tokens=engine.count_message({"role": role, "content": content}),
        created_at=T0 + timedelta(hours=5 * i),
    )


@pytest.mark.parametrize("name", sorted(PARAMS))
async def test_the_context_is_counted_exactly_and_fits(engine, name: str) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(name)
    strategy = registry.create(name, PARAMS[name], MemoryDeps(llm=engine, recaller=FakeRecaller()))
    pinned = [
        PinnedFact(id="f", text="Her father's name is Minho.", source="persona"),
        PinnedFact(id="s", text="Always speak Korean 반말 to dad.", source="style"),
    ]
    history: list[StoredMessage] = []
    state = MemoryState(pinned=[PinnedFact(id="u", text="Dad is allergic to peanuts.")])
    checked = lore = 0
    for t in range(40):
        new_text = rng.choice(SAMPLES)
        budget = rng.choice([120, 400, 900, 2000])
        req = request(history, new=new_text, budget=budget, state=state, pinned=pinned)
        req = req.model_copy(update={"lore": [LORE]})
        try:
            ctx = await strategy.assemble(req)
        except ContextOverflowError as err:
            assert name == "buffer" or budget == 120, err
            ctx = None
        if ctx is not None:
            assert engine.count(ctx.to_messages()) == ctx.total_tokens <= budget
            assert ctx.parts[0].kind == "persona" and ctx.parts[-1].kind == "new"
            checked += 1
            lore += any(p.kind == "lore" and p.messages for p in ctx.parts)
        new = [
            stored(engine, 2 * t + 1, "user", new_text),
            stored(engine, 2 * t + 2, "assistant", rng.choice(SAMPLES)),
        ]
        history = history + new
        state = await strategy.observe(SESSION, history, state, new, ctx)
    assert checked >= 10 and lore >= 5


async def test_the_summary_part_is_counted_exactly(engine) -> None:  # type: ignore[no-untyped-def]
    summary = "- 아빠 생일은 5월 3일이야.\n- Bo sees the vet on Friday. Tom moved to Busan!"
    state = MemoryState(summary=summary * 10, summary_covers=[1, 2])
    strategy = registry.create(
        "summary", {"summary_max_tokens": 60}, MemoryDeps(llm=engine, recaller=None)
    )
    ctx = await strategy.assemble(request([], state=state, budget=500))
    assert engine.count(ctx.to_messages()) == ctx.total_tokens <= 500
    assert ctx.parts[1].kind == "summary" and ctx.parts[1].tokens <= 60


async def test_the_real_model_writes_a_grounded_summary(engine) -> None:  # type: ignore[no-untyped-def]
    said = [
        ("user", "Hi! My name is Tom and I live in Busan with my wife Ana."),
        ("assistant", "Nice to meet you, Tom! How long have you lived in Busan?"),
        ("user", "Ten years. I work as a nurse at the city hospital."),
        ("assistant", "That sounds demanding. Do you like it?"),
    ]
    messages = [stored(engine, i + 1, r, c) for i, (r, c) in enumerate(said)]
    state = await update_summary(
        LLMSummarizer(engine, notes_max_tokens=48), engine, MemoryState(), messages, 200, 768, 1
    )
    assert state.summary_failures == 0, "the 135M model gave nothing usable"
    assert state.summary.startswith("- ") and len(state.summary) > 10
    assert state.summary_covers == [1, 2, 3, 4]
    assert "Tom" in state.summary or "Busan" in state.summary


async def test_the_recall_estimate_pays_each_day_once_and_is_never_short(engine) -> None:  # type: ignore[no-untyped-def]
    """choose_recalled's estimate against the exact count of what it chose, on Korean turns
    over a few days (several a day, as a chat is): a day's line is paid once per day, so what
    the estimate lets in is what fits, and it is never below the exact count (else recalled_part
    would have to drop a turn it chose)."""
    from memory.strategies._parts import choose_recalled, chunks_part, start_frame

    rng = random.Random(11)
    korean = [s for s in SAMPLES if any("\uac00" <= ch <= "\ud7a3" for ch in s)] + [
        "나비 사진 보내줘 아빠 ㅎㅎ",
        "오늘 회사에서 힘들었어.",
        "우리 고양이 이름은 나비야, 작년 봄에 데려왔잖아",
    ]
    history = [
        StoredMessage(
            id=i + 1,
            role="user" if i % 2 == 0 else "assistant",
            content=rng.choice(korean),
            tokens=0,
            created_at=T0 + timedelta(hours=7 * (i // 4), minutes=i),
        )
        for i in range(24)
    ]
    for m in history:
        m.tokens = engine.count_message({"role": m.role, "content": m.content})
    req = request(history, new="나비 이름이 뭐였지?", budget=8000)
    req = req.model_copy(update={"user_name": "아빠", "assistant_name": "Pippa"})
    frame = start_frame(engine, req)
    for trial in range(20):
        ranked = rng.sample([m.id for m in history], k=len(history))
        room = rng.randrange(60, 900)
        chosen = choose_recalled(frame, engine, ranked, room)
        if not chosen:
            continue
        exact = chunks_part(frame, engine, "recalled", [chosen]).tokens
        assert exact <= room, (trial, exact, room)
    everything = chunks_part(frame, engine, "recalled", [history]).tokens
    # all of them fit in their exact count plus the estimate's slack (~2 tokens a turn; a day
    # line on every turn would be ~11)
    assert len(choose_recalled(frame, engine, [m.id for m in history], everything + 48)) == 24
