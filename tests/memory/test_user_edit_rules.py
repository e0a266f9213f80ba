"""memory/user_edits.py: the rules that keep the user's words (issue 15), as pure functions."""

from __future__ import annotations

import pytest

from memory.types import MemoryState, PinnedFact
from memory.user_edits import (
    MAX_SUMMARY_VERSIONS,
    NoSuchVersion,
    after_forget,
    after_summarizer,
    edit_summary,
    replace_pinned,
    restore_summary,
)


def test_forget_of_an_uncovered_message_changes_nothing() -> None:
    state = MemoryState(summary="- x.", summary_covers=[1, 2])
    assert after_forget(state, [5]) is state


def test_forget_drops_a_draft_that_covered_it_but_never_an_edited_summary() -> None:
    state = edit_summary(MemoryState(summary_covers=[1, 2]), "Mine.")
    state = state.model_copy(update={"summary_draft": "- draft", "draft_covers": [3]})
    after = after_forget(state, [2, 3])
    assert (after.summary, after.summary_edited, after.summary_covers) == ("Mine.", True, [1, 2])
    assert after.summary_draft is None and after.draft_covers == []
    assert "#2, #3" in (after.notice or "")


def test_the_summarizer_rewriting_an_edited_summary_keeps_the_users_version() -> None:
    before = edit_summary(MemoryState(summary="- auto.", summary_covers=[1]), "Mine.")
    rewritten = before.model_copy(update={"summary": "Mine. - more.", "summary_covers": [1, 2]})
    after = after_summarizer(before, rewritten)
    assert after.summary == "Mine. - more." and not after.summary_edited
    assert [v.text for v in after.summary_versions] == ["Mine.", "- auto."]
    assert after.summary_versions[0].edited and not after.summary_versions[1].edited
    # a summarizer's own summary replaced by the summarizer is not a user edit: nothing kept
    auto = MemoryState(summary="- a.")
    rewritten = auto.model_copy(update={"summary": "- b."})
    assert after_summarizer(auto, rewritten).summary_versions == []


def test_versions_are_bounded_newest_first_and_restore_is_undoable() -> None:
    state = MemoryState()
    for i in range(MAX_SUMMARY_VERSIONS + 5):
        state = edit_summary(state, f"v{i}")
    assert len(state.summary_versions) == MAX_SUMMARY_VERSIONS
    assert state.summary_versions[0].text == f"v{MAX_SUMMARY_VERSIONS + 3}"
    back = restore_summary(state, 2)
    assert back.summary == f"v{MAX_SUMMARY_VERSIONS + 1}"
    assert back.summary_versions[0].text == f"v{MAX_SUMMARY_VERSIONS + 4}"
    with pytest.raises(NoSuchVersion, match="no summary version 10"):
        restore_summary(back, MAX_SUMMARY_VERSIONS)


def test_replacing_pinned_facts_keeps_the_removed_ones_once() -> None:
    a, b = PinnedFact(id="user:a", text="A"), PinnedFact(id="user:b", text="B")
    state = replace_pinned(MemoryState(pinned=[a, b]), [b])
    assert [r.fact for r in state.pinned_removed] == [a]
    state = replace_pinned(state, [a, b])  # pinned again by hand: no longer "removed"
    assert state.pinned_removed == []
