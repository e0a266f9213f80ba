"""Deterministic stand-ins for unit tests of memory logic (the real engine has its own tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from app.llm.types import GenerationParams
from memory.base import MemoryDeps
from memory.types import AssembleRequest, MemoryState, PinnedFact, SessionInfo, StoredMessage

SESSION = SessionInfo(id="s1", user_id="u1", persona_id="p1")
T0 = datetime(2026, 11, 1, 9, 0)


class FakeLLM:
    """count_message = len(content)//4 + 4, overhead 3: additive like the real contract."""

    context_window = 8192

    def __init__(self, replies: Sequence[str] | None = None, fail: bool = False):
        self.replies = list(replies or [])
        self.fail = fail
        self.calls: list[list[dict[str, str]]] = []
        self.params: list[GenerationParams] = []

    def count_message(self, message: Mapping[str, str]) -> int:
        return len(message["content"]) // 4 + 4

    def count_overhead(self) -> int:
        return 3

    def count(self, messages: Sequence[Mapping[str, str]]) -> int:
        return self.count_overhead() + sum(self.count_message(m) for m in messages)

    async def complete(
        self, messages: Sequence[Mapping[str, str]], params: GenerationParams
    ) -> str:
        self.calls.append([dict(m) for m in messages])
        self.params.append(params)
        if self.fail:
            raise RuntimeError("engine down")
        if self.replies:
            return self.replies.pop(0)
        said = [line[6:] for line in messages[-1]["content"].splitlines() if line[:6] == "user: "]
        return "\n".join(f"- user said {' '.join(s.split()[:3])}" for s in said) or "- (empty)"


class FakeRecaller:
    """Ranks by shared words with the query (ties: newest first); records what it indexed."""

    def __init__(self) -> None:
        self.indexed: list[int] = []
        self.forgotten: list[int] = []
        self.queries: list[tuple[str, set[int], int]] = []

    async def recall(self, session, query, history, exclude_ids, limit, scope=()):  # type: ignore[no-untyped-def]
        self.queries.append((query, set(exclude_ids), limit))
        q = set(query.lower().split())
        turns = [*history, *(m for s in scope for m in s.history)]
        scored = [
            (len(q & set(m.content.lower().split())), m.id)
            for m in turns
            if m.id not in exclude_ids
        ]
        scored.sort(key=lambda s: (-s[0], -s[1]))
        return [mid for _, mid in scored[:limit]]

    async def observe(self, session, messages):  # type: ignore[no-untyped-def]
        self.indexed.extend(m.id for m in messages)

    async def forget(self, session, message_ids=None):  # type: ignore[no-untyped-def]
        self.forgotten.extend(message_ids or [])


def message(i: int, role: str, content: str, day: int = 0) -> StoredMessage:
    return StoredMessage(
        id=i,
        role=role,  # type: ignore[arg-type]
        content=content,
        tokens=len(content) // 4 + 4,
        created_at=T0 + timedelta(days=day, minutes=i),
    )


def conversation(turns: int, chars: int = 40, start_id: int = 1) -> list[StoredMessage]:
    out = []
    for t in range(turns):
        i = start_id + 2 * t
        out.append(message(i, "user", f"user turn {t} " + "u" * max(0, chars - 12), day=t // 10))
        out.append(message(i + 1, "assistant", f"reply {t} " + "a" * max(0, chars - 8), t // 10))
    return out


def request(
    history: list[StoredMessage],
    new: str = "hello there",
    budget: int = 1000,
    state: MemoryState | None = None,
    system: str = "You are Mina, a cheerful daughter.",
    pinned: list[PinnedFact] | None = None,
) -> AssembleRequest:
    return AssembleRequest(
        session=SESSION,
        system_prompt=system,
        persona_pinned=pinned or [],
        history=history,
        state=state or MemoryState(),
        new_message=new,
        budget=budget,
    )


def deps(llm: FakeLLM | None = None, recaller: FakeRecaller | None = None) -> MemoryDeps:
    return MemoryDeps(llm=llm or FakeLLM(), recaller=recaller or FakeRecaller())
