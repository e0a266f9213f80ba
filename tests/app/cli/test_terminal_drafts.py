"""Drafts from the terminal (app/cli/drafts.py), as a user meets them: `memento chat` in a pty
against a live server on the real model. A message typed and left for a moment before Enter is
told to the server as a draft and prefilled, so its turn prefills only the reply's opening, as
the page's drafted turns do (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.server import LiveServer, make_settings, wait_until
from support.terminal import PROMPT, USAGE, chatting, started

QUESTION = "Where does my sister live now?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("drafts"))) as s:
        yield s


@pytest.fixture
def chat(server: LiveServer, tmp_path: Path) -> Iterator[Any]:
    with chatting(server, tmp_path, "--persona", "assistant", "--max-tokens", "8") as child:
        yield child


def test_a_message_typed_before_enter_is_prefilled_while_it_waits(
    server: LiveServer, chat: Any
) -> None:
    warmer = server.services.chat.warmer
    session_id = started(chat)
    chat.sendline("My sister moved to Busan last month.")
    chat.expect(USAGE)
    chat.expect(PROMPT)
    wait_until(lambda: not warmer.warming(session_id), "the warm-up after the first reply")

    chat.send(QUESTION)  # typed, not sent: the pause tells it
    wait_until(lambda: warmer.draft_of(session_id) == QUESTION, "the terminal's draft")
    wait_until(lambda: not warmer.warming(session_id), "the warm-up of the draft")
    chat.send("\r")
    chat.expect(USAGE)
    prompt_tokens, cached = int(chat.match.group(1)), int(chat.match.group(2))
    # all but the reply's opening ("<|im_start|>assistant\n") was in the cache, the message
    # as typed included (its own ~10 tokens)
    assert prompt_tokens - cached <= 4, (prompt_tokens, cached)
    chat.expect(PROMPT)
    # sending it was not a draft: the turn ended the one told
    assert warmer.draft_of(session_id) in (None, "")
