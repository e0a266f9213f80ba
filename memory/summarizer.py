"""Progressive conversation summaries, bounded in tokens and safe against a weak model.

The default model is a 135M instruct model: it cannot rewrite a long running summary without
losing most of it, but it can list a few facts from a short transcript. So the summary grows
by appending short bullet notes per chunk of pruned messages (oldest first), and only when it
passes its token cap is it compressed (by the model) or, as the last resort, cut at sentence
boundaries keeping the oldest notes and the newest ones. Empty or garbage output never
replaces a summary: the chunk stays pending and is retried on the next observe; after
`fallback_after` failures in a row an extractive summary (first sentence of each message) is
used so memory keeps moving.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

from app.llm.types import GenerationParams
from memory.budget import fit_text
from memory.speakers import split_label
from memory.types import LLM, MemoryState, StoredMessage

log = logging.getLogger(__name__)

SUMMARY_HEADER = "Summary of the conversation so far:\n"
MAX_NOTE_LINES = 12
_LINE_CHARS = 300  # per transcript message in a summarizer prompt


class SummaryError(Exception):
    """The summarizer produced nothing usable (empty, garbage, engine failure)."""


class Summarizer(Protocol):
    async def summarize(self, messages: Sequence[StoredMessage]) -> str:
        """Bullet notes ("- ..." lines) for these messages ("" if they say nothing); raises
        SummaryError when it fails."""
        ...

    async def compress(self, notes: str, max_tokens: int) -> str:
        """The same notes, shorter; raises SummaryError."""
        ...


def render_summary(text: str) -> str:
    return SUMMARY_HEADER + text


def summary_tokens(llm: LLM, text: str) -> int:
    """Tokens the summary costs in a prompt (as the system message the strategies render)."""
    return llm.count_message({"role": "system", "content": render_summary(text)})


def transcript(messages: Sequence[StoredMessage]) -> str:
    lines = []
    for m in messages:
        text = " ".join(m.content.split())
        if len(text) > _LINE_CHARS:
            text = text[:_LINE_CHARS].rsplit(" ", 1)[0] + " ..."
        lines.append(f"{m.role}: {text}")
    return "\n".join(lines)


_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d+[.)])\s*")
_SPECIAL = re.compile(r"<\|[^|>]*\|>|</?s>")
_ECHO = ("bullet point", "list the facts", "the conversation", "conversation:", "notes:")


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if len(w) >= 3 or not w.isascii()]


def _grounded(text: str, source: set[str] | None) -> bool:
    words = _words(text)
    return source is None or not words or sum(w in source for w in words) / len(words) >= 0.6


def clean_notes(raw: str, source: str | None = None) -> str:
    """Normalise model output to unique "- fact" lines; SummaryError if nothing usable is left.

    Drops special tokens, echoed instructions, lines without letters, loops and truncated
    repeats (a small model repeats itself), and, given the `source` transcript, lines mostly
    made of words the chat never used (hallucinated people and places) and invented
    "Name:" labels.
    """
    vocab = set(_words(source)) if source is not None else None
    seen: list[str] = []
    lines: list[str] = []
    for line in _SPECIAL.sub("\n", raw).splitlines():
        text = _BULLET.sub("", line).strip().strip('"').strip()
        label = re.match(r"^([^:\s]{1,20}):\s+", text)
        if label and vocab is not None and not _grounded(label.group(1), vocab):
            text = text[label.end() :]
        key = re.sub(r"\W+", " ", text.lower()).strip()
        if not key or sum(c.isalpha() for c in text) < 3 or any(k.startswith(key) for k in seen):
            continue
        if any(e in text.lower() for e in _ECHO) and len(key.split()) < 8:
            continue
        words = key.split()
        if len(words) >= 8 and len(set(words)) / len(words) < 0.4:
            continue  # a repetition loop inside one line
        if not _grounded(text, vocab):
            continue
        seen.append(key)
        lines.append(f"- {text}")
        if len(lines) >= MAX_NOTE_LINES:
            break
    if not lines:
        raise SummaryError(f"the summarizer output has no usable notes: {raw[:80]!r}")
    return "\n".join(lines)


class LLMSummarizer:
    """Notes written by the chat model itself (greedy, short)."""

    def __init__(self, llm: LLM, notes_max_tokens: int = 80):
        self.llm = llm
        self.notes_max_tokens = notes_max_tokens

    async def _ask(self, prompt: str, max_tokens: int, source: str) -> str:
        messages = [
            {"role": "system", "content": "You write short, factual notes about a chat."},
            {"role": "user", "content": prompt},
        ]
        params = GenerationParams(temperature=0.0, max_tokens=max_tokens, priority="background")
        try:
            raw = await self.llm.complete(messages, params)
        except Exception as exc:  # engine down, cancelled, ...: the caller retries later
            raise SummaryError(f"the summarizer call failed: {exc}") from exc
        return clean_notes(raw, source)

    async def summarize(self, messages: Sequence[StoredMessage]) -> str:
        if not any(m.content.strip() for m in messages):
            return ""  # nothing was said: nothing to ask the model
        chat = transcript(messages)
        prompt = (
            f"Chat:\n{chat}\n\n"
            "Write the facts from this chat as 2 to 4 short bullet points. "
            "Start each line with '- '. Keep names, places, dates and numbers."
        )
        return await self._ask(prompt, self.notes_max_tokens, chat)

    async def compress(self, notes: str, max_tokens: int) -> str:
        prompt = (
            f"Notes:\n{notes}\n\n"
            "Rewrite these notes shorter, as bullet points starting with '- '. "
            "Keep names, places, dates and numbers."
        )
        return await self._ask(prompt, max_tokens, notes)


class ExtractiveSummarizer:
    """No model: the first statement of each message (questions carry no facts; greetings and
    one-word acknowledgements are skipped). Never fails; cheap enough for imports."""

    def __init__(self, words_per_message: int = 24):
        self.words_per_message = words_per_message

    def statement(self, content: str) -> str | None:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(content.split())):
            words = sentence.split()
            if sentence.endswith("?") or len(words) < 3:
                continue
            cut = " ".join(words[: self.words_per_message])
            return cut + (" ..." if len(words) > self.words_per_message else "")
        return None

    async def summarize(self, messages: Sequence[StoredMessage]) -> str:
        """Third-person notes ("- The user said: ...", "- Caroline said: ..."): as "- user: ..."
        lines the model read them as a transcript to go on with (issue 12)."""
        lines = []
        for m in messages:
            speaker, text = split_label(m.content)
            said = self.statement(text)
            if said:
                who = speaker or ("The user" if m.role == "user" else "You")
                lines.append(f"- {who} said: {said}")
        return "\n".join(lines)

    async def compress(self, notes: str, max_tokens: int) -> str:
        raise SummaryError("extractive notes are not compressed; they are cut instead")


def chunk_messages(messages: Sequence[StoredMessage], max_tokens: int) -> list[list[StoredMessage]]:
    """Consecutive groups of at most max_tokens (stored counts); one message is never split."""
    chunks: list[list[StoredMessage]] = []
    current: list[StoredMessage] = []
    size = 0
    for m in messages:
        if current and size + m.tokens > max_tokens:
            chunks.append(current)
            current, size = [], 0
        current.append(m)
        size += m.tokens
    if current:
        chunks.append(current)
    return chunks


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


async def fold(summarizer: Summarizer, llm: LLM, previous: str, notes: str, cap_tokens: int) -> str:
    """previous + notes, kept within cap_tokens (as rendered by render_summary)."""

    def fits(text: str, limit: int = cap_tokens) -> bool:
        return summary_tokens(llm, text) <= limit

    combined = _join(previous, notes)
    if fits(combined):
        return combined
    try:
        compressed = await summarizer.compress(combined, cap_tokens)
        # a 135M model may "compress" 200 tokens of facts into one line: refuse such losses
        if fits(compressed) and summary_tokens(llm, compressed) >= cap_tokens // 3:
            return compressed
    except Exception as exc:
        log.info("summary compression failed, cutting at sentence boundaries: %s", exc)
    empty = summary_tokens(llm, "")
    share = empty + (cap_tokens - empty) // 2
    new_part = fit_text(notes, lambda t: fits(t, share))
    old_part = fit_text(previous, lambda t: fits(_join(t, new_part)))
    result = _join(old_part, new_part)
    return result if fits(result) else fit_text(result, fits)


async def update_summary(
    summarizer: Summarizer,
    llm: LLM,
    state: MemoryState,
    pending: Sequence[StoredMessage],
    cap_tokens: int,
    chunk_tokens: int,
    max_chunks: int | None,
    fallback_after: int = 3,
) -> MemoryState:
    """Fold `pending` (oldest first, not yet covered) into the summary, chunk by chunk.

    Returns a new state. Stops at the first failure (summary_failures + 1; the rest stays
    pending for the next observe) or after max_chunks chunks (imports of long histories are
    summarized over several observes instead of blocking one for minutes). While some of
    `pending` is left, the work goes into state.summary_draft, and state.summary stays as it
    was: the prompt's head changes once, when the backlog is done, not at every step.
    """
    summary = state.summary if state.summary_draft is None else state.summary_draft
    covers = [*state.summary_covers, *state.draft_covers]
    failures = state.summary_failures
    chunks = chunk_messages(pending, chunk_tokens)
    done = 0
    for n, chunk in enumerate(chunks):
        if max_chunks is not None and n >= max_chunks:
            break
        try:
            notes = await summarizer.summarize(chunk)
        except Exception as exc:  # whatever the backend raised: never lose the old summary
            failures += 1
            if failures < fallback_after:
                log.warning("summary failed (%d in a row), retried next turn: %s", failures, exc)
                break
            log.warning("summary failed %d times; using an extractive summary: %s", failures, exc)
            notes = await ExtractiveSummarizer().summarize(chunk)
        summary = await fold(summarizer, llm, summary, notes, cap_tokens)
        covers.extend(m.id for m in chunk)
        failures = 0
        done += 1
    if done < len(chunks):  # a backlog is left: a draft until it is done
        published = len(state.summary_covers)
        return state.model_copy(
            update={
                "summary_draft": summary,
                "draft_covers": covers[published:],
                "summary_failures": failures,
            }
        )
    return state.model_copy(
        update={
            "summary": summary,
            "summary_covers": covers,
            "summary_draft": None,
            "draft_covers": [],
            "summary_failures": failures,
        }
    )
