"""What the user wrote is never destroyed by automation (issue 15).

A session's summary and pinned facts can be the user's own words: an edited summary, a fact
they pinned. Before anything replaces or removes them (a forget, the summarizer, an edit, an
unpin), the previous version is kept in the MemoryState, bounded, so the API and the Memory tab
can show it and restore it. Forgetting a message the summary covers no longer empties a
summary the user edited: it stays theirs, and `notice` says what happened. A summary the
summarizer wrote is rebuilt without the forgotten message, as before, and its previous version
is kept too. Pure functions on MemoryState; the routes and SessionMemory apply them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from memory.types import MemoryState, PinnedFact, RemovedFact, SummaryVersion

MAX_SUMMARY_VERSIONS = 10
MAX_REMOVED_FACTS = 20


class NoSuchVersion(LookupError):
    """Restoring a summary version or a removed fact that is not kept (HTTP 404 upstream)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _now() -> datetime:
    return datetime.now(UTC)


def _kept(state: MemoryState, reason: str) -> list[SummaryVersion]:
    """The versions with the current summary in front (an empty summary is not a version)."""
    if not state.summary.strip():
        return list(state.summary_versions)
    current = SummaryVersion(
        text=state.summary,
        covers=list(state.summary_covers),
        edited=state.summary_edited,
        replaced_at=_now(),
        reason=reason,
    )
    return [current, *state.summary_versions][:MAX_SUMMARY_VERSIONS]


def edit_summary(state: MemoryState, text: str) -> MemoryState:
    """The user's own summary; the one it replaces is kept. Keeps what the summary covers
    (the summarizer goes on from there) and resets failures."""
    text = text.strip()
    if text == state.summary and state.summary_edited:
        return state
    return state.model_copy(
        update={
            "summary_versions": _kept(state, "replaced by your edit"),
            "summary": text,
            "summary_edited": bool(text),
            "summary_failures": 0,
            "notice": None,
        }
    )


def restore_summary(state: MemoryState, index: int = 0) -> MemoryState:
    """Make kept version `index` (0: the newest) the summary again; the current one is kept in
    its place, so a restore can be undone too. A restored summary is the user's choice."""
    if not 0 <= index < len(state.summary_versions):
        raise NoSuchVersion(
            f"no summary version {index}: {len(state.summary_versions)} kept (0 is the newest)",
            field="version",
        )
    chosen = state.summary_versions[index]
    rest = [v for i, v in enumerate(state.summary_versions) if i != index]
    forgotten = set(state.forgotten)
    kept = _kept(state.model_copy(update={"summary_versions": rest}), "replaced by a restore")
    return state.model_copy(
        update={
            "summary_versions": kept,
            "summary": chosen.text,
            "summary_covers": [i for i in chosen.covers if i not in forgotten],
            "summary_edited": True,
            "summary_failures": 0,
            "summary_draft": None,
            "draft_covers": [],
            "notice": None,
        }
    )


def after_forget(state: MemoryState, forgotten_ids: Sequence[int]) -> MemoryState:
    """After messages were forgotten (or edited or deleted): a summary written by the
    summarizer that covered any is rebuilt without them by the next observe (progressively,
    oldest first), its previous version kept; a summary the user edited stays as they wrote
    it. Either way `notice` says so. An unpublished draft is the summarizer's: dropped."""
    ids = set(forgotten_ids)
    update: dict[str, object] = {}
    if ids & set(state.draft_covers):
        update.update(summary_draft=None, draft_covers=[])
    if ids & set(state.summary_covers):
        which = ", ".join(f"#{i}" for i in sorted(ids))
        if state.summary_edited:
            update["notice"] = (
                f"Your edited summary covers the forgotten message {which}; it was kept as "
                "you wrote it. Edit it if it should not mention it."
            )
        else:
            update.update(
                summary_versions=_kept(state, f"rebuilt without the forgotten message {which}"),
                summary="",
                summary_covers=[],
                summary_failures=0,
                notice=(
                    f"The summary covered the forgotten message {which}, so it is being "
                    "rebuilt without it; the previous version is kept and can be restored."
                ),
            )
    return state.model_copy(update=update) if update else state


def after_summarizer(before: MemoryState, after: MemoryState) -> MemoryState:
    """An observe rewrote the summary: if the user had edited it, their version is kept (the
    summarizer folds new turns into it, and a small model may not keep their words)."""
    if not before.summary_edited or after.summary == before.summary:
        return after
    return after.model_copy(
        update={
            "summary_versions": _kept(before, "folded into the summarizer's next version"),
            "summary_edited": False,
            "notice": (
                "The summarizer rewrote your edited summary with newer turns; your version is "
                "kept and can be restored."
            ),
        }
    )


def replace_pinned(state: MemoryState, pinned: Sequence[PinnedFact]) -> MemoryState:
    """The user's pinned facts are now `pinned`; the facts that go are kept to pin again."""
    staying = {p.id for p in pinned}
    gone = [RemovedFact(fact=p, removed_at=_now()) for p in state.pinned if p.id not in staying]
    again = {p.id for p in pinned}
    removed = [*gone, *(r for r in state.pinned_removed if r.fact.id not in again)]
    return state.model_copy(
        update={"pinned": list(pinned), "pinned_removed": removed[:MAX_REMOVED_FACTS]}
    )


def restore_pinned(state: MemoryState, fact_id: str) -> MemoryState:
    """Pin a removed fact again (at the end of the pinned list)."""
    found = next((r for r in state.pinned_removed if r.fact.id == fact_id), None)
    if found is None:
        raise NoSuchVersion(f"no removed pinned fact {fact_id!r} is kept", field="fact_id")
    return state.model_copy(
        update={
            "pinned": [*(p for p in state.pinned if p.id != fact_id), found.fact],
            "pinned_removed": [r for r in state.pinned_removed if r.fact.id != fact_id],
        }
    )
