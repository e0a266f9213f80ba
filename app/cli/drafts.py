"""Drafts from the terminal: tell the server what is being typed at the prompt when typing
pauses (PUT .../draft, as the page does), so the message's prompt, recall included, is
prefilled before it is sent (issue 13: a drafted turn waits for ~4 tokens of prefill instead of
the ~250 its recall finds).

input() blocks in readline, which gives no event per key, so a thread reads the line typed so
far ten times a second (readline.get_line_buffer needs the GIL only, which readline releases
while it waits for a key). Not from PyOS_InputHook, which readline calls on the main thread
between keys: Python code run there took the Ctrl-C meant for input(), and Ctrl-C at the prompt
no longer left the chat (tests/app/cli/test_terminal.py). A line read while readline moves it
in memory may be garbled; it is told only once it has read the same for a whole pause.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

PAUSE_S = 0.4  # the page's pause too (app/web/typing.js)
EVERY_S = 0.1


class DraftWatch:
    """Decides when the line typed so far is a draft worth telling: when it has read the same
    for PAUSE_S, is not blank and differs from the last one told."""

    def __init__(self, pause: float = PAUSE_S, clock: Callable[[], float] = time.monotonic):
        self._pause, self._clock = pause, clock
        self._line, self._since, self._told = "", 0.0, ""

    def seen(self, line: str) -> str | None:
        """The line as it reads now; returns it when it is to be told now."""
        now = self._clock()
        if line != self._line:
            self._line, self._since = line, now
        elif line.strip() and line != self._told and now - self._since >= self._pause:
            self._told = line
            return line
        return None

    def sent(self) -> None:
        """The line went out as a message: the next one starts afresh."""
        self._line = self._told = ""


@contextlib.contextmanager
def watching(
    read: Callable[[], str], watch: DraftWatch, tell: Callable[[str], None]
) -> Iterator[None]:
    """While the block runs (an input() call), read the line every EVERY_S and `tell` the
    drafts `watch` picks, on a thread of its own. Best effort: a failed read or tell is
    dropped; a draft still being told when the block ends is refused by the server once the
    message's turn holds the session."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(EVERY_S):
            with contextlib.suppress(Exception):
                draft = watch.seen(read())
                if draft is not None and not stop.is_set():
                    tell(draft)

    threading.Thread(target=run, name="memento-drafts", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        watch.sent()
