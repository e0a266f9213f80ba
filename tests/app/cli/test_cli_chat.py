"""`memento chat` driven for real through a pseudo-terminal (pexpect): the in-process server,
the real model, streamed output and the slash commands."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pexpect = pytest.importorskip("pexpect")

REPO = Path(__file__).resolve().parents[3]
MEMENTO = Path(sys.executable).parent / "memento"
START_TIMEOUT = 600  # the model loads on a shared 2-core machine; not a timing assertion
TURN_TIMEOUT = 300
PROMPT = "you › "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def spawn(tmp_path: Path, *args: str) -> Any:
    env = {
        **os.environ,
        "MEMENTO_DATA_DIR": str(tmp_path / "data"),
        "MEMENTO_PERSONAS_DIR": str(REPO / "personas"),
        "HF_HUB_OFFLINE": "1",
        "TERM": "dumb",  # plain text: no colour codes or cursor tricks to parse around
        "COLUMNS": "120",
        "LINES": "40",
    }
    child = pexpect.spawn(
        str(MEMENTO),
        ["chat", *args],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=TURN_TIMEOUT,
        dimensions=(40, 120),
    )
    return child


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Any]:
    child = spawn(tmp_path, "--persona", "pippa", "--max-tokens", "12")
    yield child
    if child.isalive():
        child.terminate(force=True)


def text(child: Any) -> str:
    return ANSI.sub("", child.before or "")


@pytest.mark.slow
def test_chat_in_process_streams_and_shows_context(chat: Any, tmp_path: Path):
    chat.expect(r"new session (ses_\w+)", timeout=START_TIMEOUT)
    session_id = chat.match.group(1)
    chat.expect("persona Pippa")
    chat.expect(PROMPT)  # the greeting comes before the first prompt
    assert "아빠" in text(chat)

    chat.sendline("Hi Pippa, I fixed the bike today.")
    chat.expect(r"(\d+) prompt tokens \((\d+) cached\), (\d+) generated")
    prompt_tokens, completion = int(chat.match.group(1)), int(chat.match.group(3))
    assert prompt_tokens > 100 and 1 <= completion <= 12
    reply = text(chat).split("Pippa", 1)[-1].strip()
    assert reply, "no reply text was printed"
    chat.expect(PROMPT)

    chat.sendline("/context")
    chat.expect(r"context of reply #(\d+)")
    chat.expect(r"(\d+) of (\d+) budget tokens")
    table = text(chat)
    for kind in ("persona", "pinned", "new"):
        assert re.search(rf"\b{kind}\b\s+\S*\s*\d+", table), f"no {kind} row in:\n{table}"
    assert "bike" in table  # the new message's preview
    chat.expect(PROMPT)

    chat.sendline("/memory")
    chat.expect("pinned facts")
    chat.expect(r"strategy hybrid")
    assert "style" in text(chat)
    chat.expect(PROMPT)

    chat.sendline("/personas")
    chat.expect("cody")
    chat.expect(PROMPT)

    chat.sendline("/strategies")
    chat.expect("memory strategies")
    chat.expect(PROMPT)
    listed = text(chat)
    for name in ("buffer", "window", "token_buffer", "summary_buffer", "vector", "hybrid"):
        assert re.search(rf"^\W*{name}\s", listed, re.M), f"no {name} row in:\n{listed}"
    assert "The last k turns" in " ".join(listed.split())  # the server's description

    chat.sendline("/nonsense")
    chat.expect("unknown command /nonsense")
    chat.expect(PROMPT)

    chat.sendline("/new cody")
    chat.expect(r"new session (ses_\w+) · persona (\w+)")
    assert chat.match.group(1) != session_id and chat.match.group(2) == "Cody"
    chat.expect(PROMPT)

    chat.sendline("/quit")
    chat.expect(pexpect.EOF, timeout=120)
    chat.close()
    assert chat.exitstatus == 0, text(chat)

    # the conversation is on disk: resume it against the same data dir
    resumed = spawn(tmp_path, "--session", session_id)
    try:
        resumed.expect(rf"resumed session {session_id}", timeout=START_TIMEOUT)
        resumed.expect(PROMPT)  # after the history is printed
        history = text(resumed)
        resumed.sendline("/quit")
        resumed.expect(pexpect.EOF, timeout=120)
    finally:
        resumed.terminate(force=True)
    assert "fixed the bike" in history


def test_unreachable_server_is_a_clear_error(tmp_path: Path):
    child = spawn(tmp_path, "--url", "http://127.0.0.1:9")
    child.expect(pexpect.EOF, timeout=120)
    child.close()
    assert "cannot reach the server at http://127.0.0.1:9" in " ".join(text(child).split())
    assert child.exitstatus == 1
