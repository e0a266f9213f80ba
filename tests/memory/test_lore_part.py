"""The lore part in every strategy's Context: where it goes, what it costs, what a full
budget drops (and says), and the timers a reply starts (memory/strategies/_lore.py)."""

from __future__ import annotations

from typing import Any

import pytest
from memory_fakes import FakeLLM, conversation, deps, message, request

from memory import registry
from memory.lore.model import ActiveBook, LoreBook
from memory.strategies._lore import LORE_HEADER
from memory.types import PART_ORDER, AssembleRequest, Context, MemoryState

BOOK = {
    "name": "Ashvale",
    "entries": [
        {
            "id": "ember",
            "keys": ["dragon", "용"],
            "content": "Ember is {{char}}'s red dragon.",
            "priority": 10,
            "insertion_order": 20,
        },
        {
            "id": "town",
            "keys": ["Ashvale"],
            "content": "Ashvale is a town of smiths.",
            "priority": 5,
            "insertion_order": 10,
        },
        {
            "id": "moon",
            "keys": ["moon"],
            "content": "The moon here is green. " * 10,
            "priority": 1,
            "insertion_order": 30,
        },
    ],
}


def lore_request(new: str, **kw: Any) -> AssembleRequest:
    req = request(conversation(4), new=new, budget=kw.pop("budget", 2000), **kw)
    return req.model_copy(
        update={
            "lore": [ActiveBook(id="persona:p1", book=LoreBook.of(BOOK))],
            "assistant_name": "Mina",
        }
    )


def lore(ctx: Context):  # type: ignore[no-untyped-def]
    return next((p for p in ctx.parts if p.kind == "lore"), None)


@pytest.mark.parametrize("name", registry.available())
async def test_every_strategy_shows_the_lore_that_fires(name: str) -> None:
    strategy = registry.create(name, {}, deps())
    ctx = await strategy.assemble(lore_request("Tell me about the dragon of Ashvale"))
    part = lore(ctx)
    assert part is not None
    kinds = [p.kind for p in ctx.parts]
    assert kinds == sorted(kinds, key=PART_ORDER.index) and kinds.index("lore") < kinds.index("new")
    # shown in insertion order, macros filled, one system message after the header
    assert [f.entry for f in part.fired] == ["town", "ember"]
    text = part.to_messages()[0]["content"]
    assert text.startswith(LORE_HEADER) and "Ember is Mina's red dragon." in text
    assert [f.why for f in part.fired] == [
        "key 'Ashvale' in the new message",
        "key 'dragon' in the new message",
    ]
    assert ctx.total_tokens <= ctx.budget
    assert FakeLLM().count(ctx.to_messages()) == ctx.total_tokens


async def test_nothing_fires_no_part() -> None:
    strategy = registry.create("summary_buffer", {}, deps())
    ctx = await strategy.assemble(lore_request("hello there"))
    assert lore(ctx) is None and not ctx.notes


async def test_a_full_lore_budget_drops_the_lowest_priority_and_says_so() -> None:
    strategy = registry.create("window", {}, deps())
    req = lore_request("the dragon of Ashvale under the moon").model_copy(
        update={"lore_tokens": 40}
    )
    ctx = await strategy.assemble(req)
    part = lore(ctx)
    assert [f.entry for f in part.fired] == ["town", "ember"]
    assert [f.entry for f in part.dropped] == ["moon"]  # priority 1: the first out
    assert "dropped: over the lore part's room of 40 tokens" in part.dropped[0].why
    assert ctx.notes == ["lore: 1 entries fired but did not fit: 'moon' (persona:p1)"]
    assert "did not fit" in ctx.notes[0] and part.tokens <= 40


async def test_a_book_token_budget_applies_to_its_own_entries() -> None:
    tight = {**BOOK, "token_budget": 12}
    strategy = registry.create("window", {}, deps())
    req = lore_request("the dragon of Ashvale").model_copy(
        update={"lore": [ActiveBook(id="b", book=LoreBook.of(tight))]}
    )
    part = lore(await strategy.assemble(req))
    assert [f.entry for f in part.fired] == ["ember"]  # priority 10 beats 5
    assert "token_budget of 12" in part.dropped[0].why


async def test_everything_dropped_leaves_an_empty_part_that_says_why() -> None:
    strategy = registry.create("window", {}, deps())
    ctx = await strategy.assemble(lore_request("the dragon").model_copy(update={"lore_tokens": 0}))
    part = lore(ctx)
    assert part.messages == [] and part.tokens == 0 and part.dropped[0].entry == "ember"
    assert part.to_messages() == []


async def test_the_prefix_through_the_lore_part_holds_while_the_same_entries_fire() -> None:
    strategy = registry.create("summary_buffer", {}, deps())
    history = conversation(4)
    first = await strategy.assemble(lore_request("the dragon sleeps"))
    history.append(message(9, "user", "the dragon sleeps"))
    history.append(message(10, "assistant", "Yes, the dragon sleeps."))
    second_req = lore_request("and then?").model_copy(update={"history": history})
    second = await strategy.assemble(second_req)
    head = [p.to_messages() for p in first.parts if p.kind in ("persona", "lore")]
    assert head == [p.to_messages() for p in second.parts if p.kind in ("persona", "lore")]
    assert lore(second).fired[0].message_id == 10  # in the reply, within the scan depth


async def test_observe_starts_the_timers_of_what_fired() -> None:
    sticky = {
        "entries": [{"id": "e", "keys": ["dragon"], "content": "x", "extensions": {"sticky": 2}}]
    }
    strategy = registry.create("window", {}, deps())
    req = request([], new="a dragon").model_copy(
        update={"lore": [ActiveBook(id="b", book=LoreBook.of(sticky))]}
    )
    ctx = await strategy.assemble(req)
    new = [message(1, "user", "a dragon"), message(2, "assistant", "yes")]
    state = await strategy.observe(req.session, new, MemoryState(), new, ctx)
    assert state.lore_timers["b:e"].sticky_until == 3
    again = req.model_copy(update={"history": new, "new_message": "hm", "state": state})
    assert lore(await strategy.assemble(again)).fired[0].reason == "sticky"
