"""The relationship memory's pure parts: gist extraction, refresh rules, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memory.relationship import (
    RelationshipFact,
    RelationshipState,
    extract_gist,
    refresh_gist,
    render,
)
from memory.types import StoredMessage

T0 = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)


def turns(*pairs: tuple[str, str], start: int = 1) -> list[StoredMessage]:
    return [
        StoredMessage(
            id=start + i, role=r, content=c, tokens=8, created_at=T0 + timedelta(minutes=i)
        )  # type: ignore[arg-type]
        for i, (r, c) in enumerate(pairs)
    ]


CHAT = turns(
    ("user", "hi"),
    ("assistant", "Hi dad! My favourite colour is teal."),  # hers, not his: never in his gist
    ("user", "My cat is called Jimmi and she sleeps on my keyboard."),
    ("user", "What should we eat tonight?"),
    ("user", "우리 고양이 이름은 나비야. 진짜 귀여워."),
    ("user", "다음 주에 부산에 출장 가. 3일 동안 있을 거야."),
    ("user", "ok"),
)


def test_gist_keeps_the_users_most_telling_messages_in_order() -> None:
    gist = extract_gist(CHAT)
    parts = gist.split(" / ")
    assert len(parts) == 3
    assert parts[0].startswith("My cat is called Jimmi")
    assert "나비야" in gist and "부산에 출장 가. 3일 동안" in gist  # whole messages, not halves
    assert "teal" not in gist and "eat tonight" not in gist and "ok" not in parts
    assert extract_gist(turns(("user", "ok"), ("user", "hm?"))) == ""


def test_refresh_gist_only_when_there_is_news_and_never_over_the_users_words() -> None:
    state = refresh_gist(RelationshipState(), "s1", "Sunday", CHAT)
    assert state is not None
    (gist,) = state.gists
    assert (gist.session_id, gist.title, gist.through_id) == ("s1", "Sunday", CHAT[-1].id)
    assert (gist.started_at, gist.ended_at) == (CHAT[0].created_at, CHAT[-1].created_at)
    assert refresh_gist(state, "s1", "Sunday", CHAT) is None  # nothing new
    more = CHAT + turns(
        ("user", "I bought a red bicycle, my first one since 1998, for my commute."), start=100
    )
    newer = refresh_gist(state, "s1", "Sunday", more)
    assert newer is not None and "red bicycle" in newer.gists[0].text
    edited = state.model_copy(
        update={"gists": [gist.model_copy(update={"text": "mine", "edited": True})]}
    )
    assert refresh_gist(edited, "s1", "Sunday", more) is None
    assert refresh_gist(state, "s2", None, []) is None
    assert state.without_session("s1").gists == []


def test_render_puts_facts_first_then_gists_newest_first_never_the_own_session() -> None:
    state = RelationshipState(
        facts=[RelationshipFact(id="f", text="아빠 hates cilantro", session_id="s0", created_at=T0)]
    )
    state = refresh_gist(state, "s1", None, CHAT) or state
    later = turns(("user", "My sister Mina moved to Seoul for a new job."), start=200)
    later = [m.model_copy(update={"created_at": T0 + timedelta(days=3)}) for m in later]
    state = refresh_gist(state, "s2", None, later) or state
    lines = render(state, "s3", "아빠")
    assert lines[0].content.startswith("What you remember of 아빠 from your earlier")
    assert lines[0].content.endswith("- 아빠 hates cilantro") and lines[0].session_id == "s0"
    assert lines[1].content.startswith("- Last time (2026-11-04) 아빠 said: My sister Mina")
    assert lines[1].session_id == "s2" and lines[2].content.startswith("- Earlier (2026-11-01)")
    assert [m.session_id for m in render(state, "s2", "아빠")] == ["s0", "s1"]
    assert render(RelationshipState(), "s1", "아빠") == []
