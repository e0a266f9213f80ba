"""`memento chat` in a pseudo-terminal (pexpect), against a live server (`--url`): what the
terminal tests share. Through a pty rather than pipes because the client behaves differently on
a terminal: rich prints its colours and prompts only to a TTY, input() edits the line (and
calls the hook drafts are read from) only on one."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.server import LiveServer

pexpect = pytest.importorskip("pexpect")

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 180  # a slow, shared machine: generous waits, never a timing assertion
ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"  # colour codes (and readline's) rich may put between
PROMPT = rf"you ›{ANSI} "
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x01\x02]")
USAGE = r"(\d+) prompt tokens \((\d+) cached\), (\d+) generated"


def spawn(server: LiveServer, tmp_path: Path, *args: str) -> Any:
    """`memento chat --url <server>` in a 40x120 pty, running this checkout's code."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "MEMENTO_DATA_DIR": str(tmp_path / "client-data"),
        "TERM": "xterm-256color",  # what a user has: colours, and readline's key bindings
        "COLUMNS": "120",
        "LINES": "40",
    }
    for name in ("NO_COLOR", "FORCE_COLOR", "MEMENTO_API_KEY"):
        env.pop(name, None)
    return pexpect.spawn(
        sys.executable,
        ["-m", "app.cli", "chat", "--url", server.url, *args],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 120),
    )


@contextmanager
def chatting(server: LiveServer, tmp_path: Path, *args: str) -> Iterator[Any]:
    """spawn(), ended when the block ends if the test did not end it."""
    child = spawn(server, tmp_path, *args)
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


def screen(child: Any) -> str:
    """What the last expect() skipped over, without colour codes."""
    return ESCAPES.sub("", child.before or "")


def started(chat: Any) -> str:
    """Wait for the banner and the first prompt; the new session's id."""
    chat.expect(r"new session (ses_\w+)")
    session_id = str(chat.match.group(1))
    chat.expect(PROMPT)
    return session_id
