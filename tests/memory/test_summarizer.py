"""Summaries: cleaned, bounded, progressive, and never lost on failure."""

from __future__ import annotations

import pytest
from memory_fakes import FakeLLM, conversation, message

from memory.summarizer import (
    ExtractiveSummarizer,
    LLMSummarizer,
    SummaryError,
    chunk_messages,
    clean_notes,
    fold,
    summary_tokens,
    update_summary,
)
from memory.types import MemoryState


def test_clean_notes_normalises_bullets_and_drops_loops() -> None:
    raw = "1. Tom lives in Busan.\n* Tom lives in Busan.\n\n•  He has a dog named Bo<|im_end|>junk"
    assert clean_notes(raw) == "- Tom lives in Busan.\n- He has a dog named Bo\n- junk"
    loop = "- the the the the the the the the the the\n- Mina likes tea."
    assert clean_notes(loop) == "- Mina likes tea."


@pytest.mark.parametrize("raw", ["", "   \n- \n", "- ...\n- 123", "<|im_end|>"])
def test_clean_notes_rejects_nothing_usable(raw: str) -> None:
    with pytest.raises(SummaryError):
        clean_notes(raw)


def test_chunks_follow_stored_tokens_and_never_split_a_message() -> None:
    h = conversation(5, chars=40)  # 14 tokens each
    chunks = chunk_messages(h, 30)
    assert [len(c) for c in chunks] == [2, 2, 2, 2, 2]
    assert [m for c in chunks for m in c] == h
    assert chunk_messages(h, 1) == [[m] for m in h]


async def test_llm_summarizer_prompts_with_the_transcript() -> None:
    llm = FakeLLM(replies=["- Tom has a dog.\n- Tom has a dog."])
    notes = await LLMSummarizer(llm).summarize([message(1, "user", "I am Tom, I have a dog.")])
    assert notes == "- Tom has a dog."
    assert "user: I am Tom, I have a dog." in llm.calls[0][-1]["content"]
    # summaries yield the model to replies people are waiting for
    assert llm.params[0].priority == "background"


async def test_llm_summarizer_turns_engine_errors_into_summary_errors() -> None:
    with pytest.raises(SummaryError, match="engine down"):
        await LLMSummarizer(FakeLLM(fail=True)).summarize([message(1, "user", "hi")])


async def test_update_covers_pending_in_order_and_appends_notes() -> None:
    llm = FakeLLM(replies=["- user turn 0 and reply 0.", "- user turn 2."])
    h = conversation(4, chars=40)
    state = await update_summary(LLMSummarizer(llm), llm, MemoryState(), h, 1000, 60, None)
    assert state.summary == "- user turn 0 and reply 0.\n- user turn 2."
    assert state.summary_covers == [m.id for m in h]
    assert state.summary_failures == 0


async def test_a_failed_summary_keeps_the_old_one_and_counts_the_failure() -> None:
    llm = FakeLLM(fail=True)
    old = MemoryState(summary="- Tom has a dog.", summary_covers=[1, 2])
    h = conversation(3, chars=40)
    state = await update_summary(LLMSummarizer(llm), llm, old, h[2:], 1000, 1000, None)
    assert state.summary == old.summary and state.summary_covers == [1, 2]
    assert state.summary_failures == 1
    state = await update_summary(LLMSummarizer(llm), llm, state, h[2:], 1000, 1000, None)
    assert state.summary_failures == 2


async def test_after_repeated_failures_an_extractive_summary_moves_memory_on() -> None:
    llm = FakeLLM(replies=["", "", ""])  # empty output three times
    h = [
        message(1, "user", "My sister Ana lives in Lima. She is a nurse."),
        message(2, "assistant", "Nice!"),
    ]
    state = MemoryState()
    for expected_failures in (1, 2):
        state = await update_summary(LLMSummarizer(llm), llm, state, h, 1000, 1000, None)
        assert state.summary_failures == expected_failures and state.summary == ""
    state = await update_summary(LLMSummarizer(llm), llm, state, h, 1000, 1000, None)
    assert state.summary_failures == 0
    assert "- The user said: My sister Ana lives in Lima." in state.summary
    assert state.summary_covers == [1, 2]


async def test_max_chunks_leaves_the_rest_pending_in_a_draft_published_when_done() -> None:
    llm = FakeLLM()
    h = conversation(6, chars=40)
    before = MemoryState(summary="- Earlier.", summary_covers=[0])
    state = await update_summary(ExtractiveSummarizer(), llm, before, h, 1000, 28, 2)
    # a backlog is left: the shown summary does not change until it is done
    assert (state.summary, state.summary_covers) == ("- Earlier.", [0])
    assert state.draft_covers == [m.id for m in h[:4]]
    assert state.summary_draft is not None and state.summary_draft.startswith("- Earlier.")
    done = await update_summary(ExtractiveSummarizer(), llm, state, h[4:], 1000, 28, None)
    assert done.summary_covers == [0, *(m.id for m in h)]
    assert done.summary.startswith(state.summary_draft)
    assert (done.summary_draft, done.draft_covers) == (None, [])


async def test_fold_respects_the_cap_by_compressing_or_cutting() -> None:
    llm = FakeLLM(replies=["- short."])  # compression output too small to accept (lossy)
    previous = "\n".join(f"- old fact number {i}." for i in range(20))
    notes = "\n".join(f"- new fact number {i}." for i in range(20))
    out = await fold(LLMSummarizer(llm), llm, previous, notes, 80)
    assert summary_tokens(llm, out) <= 80
    assert "old fact number 0." in out and "new fact number 0." in out  # head of both kept
    good = "\n".join(f"- old and new fact number {i}." for i in range(8))
    out = await fold(LLMSummarizer(FakeLLM(replies=[good])), llm, previous, notes, 80)
    assert out == good


async def test_the_summary_never_passes_its_cap_over_many_updates() -> None:
    llm = FakeLLM()
    h = conversation(60, chars=120)
    state = MemoryState()
    for i in range(0, len(h), 8):
        state = await update_summary(
            ExtractiveSummarizer(), llm, state, h[i : i + 8], 120, 64, None
        )
        assert summary_tokens(llm, state.summary) <= 120
    assert state.summary_covers == [m.id for m in h]
    assert "user turn 0" in state.summary  # the oldest facts survive the cuts


def test_clean_notes_drops_what_the_chat_never_said() -> None:
    source = "user: Hi! My name is Tom and I live in Busan.\nassistant: Nice to meet you, Tom!"
    raw = (
        "- Adjour: My name is Tom and I live in Busan.\n"
        "- Alex is a 12-year-old boy from Oslo.\n"
        "- Tom lives in Busan.\n"
        "- Tom lives in"  # cut by max_tokens: a prefix of a line already kept
    )
    assert (
        clean_notes(raw, source) == "- My name is Tom and I live in Busan.\n- Tom lives in Busan."
    )


async def test_extractive_notes_keep_statements_not_questions_or_greetings() -> None:
    notes = await ExtractiveSummarizer(words_per_message=6).summarize(
        [
            message(
                1, "user", "Hi dad! Guess what? I got the job at the Busan city hospital today."
            ),
            message(2, "assistant", "Really? How wonderful?"),
            message(3, "assistant", "ok"),
        ]
    )
    assert notes == "- The user said: I got the job at the ..."


async def test_extractive_notes_name_the_speaker_in_the_third_person() -> None:
    notes = await ExtractiveSummarizer().summarize(
        [
            message(1, "user", "Caroline: I went to a support group yesterday."),
            message(2, "assistant", "Melanie: That sounds powerful, I am proud of you."),
            message(3, "user", "We adopted a kitten named Mochi."),
            message(4, "assistant", "A kitten is wonderful news."),
        ]
    )
    assert notes.splitlines() == [
        "- Caroline said: I went to a support group yesterday.",
        "- Melanie said: That sounds powerful, I am proud of you.",
        "- The user said: We adopted a kitten named Mochi.",
        "- You said: A kitten is wonderful news.",
    ]
