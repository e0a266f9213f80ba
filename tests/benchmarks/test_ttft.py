"""The TTFT benchmark's pure helpers: the event-stream parser and the steady-state figures
(no server, no model)."""

from __future__ import annotations

from benchmarks.ttft import Scene, Turn, pool, sse, typed_drafts


def test_sse_pairs_each_event_with_its_data() -> None:
    lines = ["event: delta", 'data: {"text": "Hi"}', "", "event: done", "data: {}", ""]
    assert list(sse(lines)) == [("delta", '{"text": "Hi"}'), ("done", "{}")]


def test_steady_state_is_the_second_half() -> None:
    scene = Scene([Turn(9.0, 100, 0), Turn(8.0, 100, 0), Turn(1.0, 100, 90), Turn(3.0, 100, 70)])
    assert [t.ttft for t in scene.steady()] == [1.0, 3.0]
    assert scene.ttft == 2.0  # the median of the second half
    assert scene.reused == 0.8  # cached over prompt tokens, summed over it


def test_live_chats_pool_their_second_halves() -> None:
    one = Scene([Turn(9.0, 100, 0), Turn(1.0, 100, 90)])
    two = Scene([Turn(8.0, 100, 0), Turn(7.0, 100, 0), Turn(2.0, 100, 50), Turn(3.0, 100, 70)])
    pooled = pool([one, two])
    assert [t.ttft for t in pooled.steady()] == [1.0, 2.0, 3.0]  # not the pooled list's half
    assert pooled.ttft == 2.0 and pooled.reused == 0.7
    assert len(pooled.turns) == 6


def test_typed_drafts_tell_half_then_the_whole_or_all_but_the_last_word() -> None:
    text = "When did Caroline go to the LGBTQ support group?"
    assert typed_drafts(text, whole=False) == [
        "When did Caroline go",
        "When did Caroline go to the LGBTQ support",
    ]
    assert typed_drafts(text, whole=True) == ["When did Caroline go", text]
    assert typed_drafts("Hi", whole=False) == ["", ""]
