"""When the terminal tells the server what is being typed (app/cli/drafts.py DraftWatch): once a
pause, never twice for the same line, never a blank one, afresh for the next message;
what the chat tells (app/cli/chat.py): no slash command, best effort, quiet after a 429. The
real terminal and server: tests/app/cli/test_terminal_drafts.py."""

from __future__ import annotations

import queue
from typing import Any

from rich.console import Console

from app.cli.chat import ChatRepl
from app.cli.chat_client import ApiError
from app.cli.drafts import DraftWatch, watching


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def typed(line: str, *times: float, w: DraftWatch, clock: Clock) -> list[str]:
    """What `w` tells of `line` read at these times."""
    told = []
    for t in times:
        clock.now = t
        if (draft := w.seen(line)) is not None:
            told.append(draft)
    return told


def test_a_line_is_told_once_when_typing_pauses() -> None:
    clock = Clock()
    w = DraftWatch(pause=0.4, clock=clock)
    assert typed("Where does", 0.0, 0.1, 0.3, w=w, clock=clock) == []  # typing goes on
    # changed: its pause starts anew, and ends 0.4 s later
    assert typed("Where does my sister", 0.35, 0.6, w=w, clock=clock) == []
    assert typed("Where does my sister", 0.8, w=w, clock=clock) == ["Where does my sister"]
    assert typed("Where does my sister", 1.5, 3.0, w=w, clock=clock) == []  # told already
    line = "Where does my sister live?"
    assert typed(line, 3.1, 3.6, w=w, clock=clock) == [line]


def test_blank_lines_are_not_told() -> None:
    clock = Clock()
    w = DraftWatch(pause=0.4, clock=clock)
    assert typed("   ", 0.0, 1.0, w=w, clock=clock) == []
    assert typed("", 1.1, 2.0, w=w, clock=clock) == []


def test_a_sent_line_may_be_drafted_again_as_the_next_message() -> None:
    clock = Clock()
    w = DraftWatch(pause=0.4, clock=clock)
    assert typed("hello", 0.0, 0.5, w=w, clock=clock) == ["hello"]
    w.sent()
    assert typed("hello", 1.0, 1.5, w=w, clock=clock) == ["hello"]


class DraftClient:
    """A ChatClient's draft call, recorded (logic only: the pty test runs the real one)."""

    def __init__(self, fail: ApiError | None = None) -> None:
        self.calls: list[tuple[str, str, int | None]] = []
        self.fail = fail

    def draft(self, session_id: str, content: str, max_tokens: int | None) -> dict[str, Any]:
        self.calls.append((session_id, content, max_tokens))
        if self.fail is not None:
            raise self.fail
        return {"warming": True}


def repl(client: DraftClient) -> ChatRepl:
    r = ChatRepl(client, Console(quiet=True), 8, readline=True)  # type: ignore[arg-type]
    r.session = {"id": "ses_1"}
    return r


def test_the_chat_tells_drafts_with_its_max_tokens_but_never_a_command() -> None:
    client = DraftClient()
    r = repl(client)
    r._tell_draft("/memory")
    r._tell_draft("  /new pippa")
    r._tell_draft("Where does my sister live?")
    assert client.calls == [("ses_1", "Where does my sister live?", 8)]


def test_a_refused_draft_changes_nothing_and_429_quiets_them() -> None:
    client = DraftClient(ApiError(429, "too many requests"))
    r = repl(client)
    r._tell_draft("one")  # refused: nothing raised to the typing user
    r._tell_draft("two")  # quiet after the 429: the messages need the rate limit
    assert [c[1] for c in client.calls] == ["one"]
    client.fail = ApiError(0, "cannot reach the server")
    r._quiet_until = 0.0
    r._tell_draft("three")
    r._tell_draft("four")  # not a 429: no quiet
    assert [c[1] for c in client.calls] == ["one", "three", "four"]


def test_watching_reads_the_line_on_a_thread_and_survives_a_failing_read() -> None:
    told: queue.Queue[str] = queue.Queue()
    reads = iter(["", "hi"])

    def read() -> str:
        line = next(reads, "hi there")
        if line == "":
            raise RuntimeError("readline is not ready")
        return line

    w = DraftWatch()
    with watching(read, w, told.put):
        assert told.get(timeout=30) == "hi there"  # "hi" changed before its pause ended
