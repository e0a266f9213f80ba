"""`memento chat` as a user types into it (issue 17): the real terminal program in a
pseudo-terminal (pexpect), against a real Memento server (`--url`) whose model is a real HTTP
model server in this process (tests/support/fake_llm.py), so a reply streams in a few known
tokens and can be held mid-stream for Ctrl-C.

Through a pty rather than pipes because the client behaves differently on a terminal: rich
prints its colours and prompts only to a TTY, input() edits the line (arrow keys, history)
only on one, and Ctrl-C / Ctrl-D are keys the terminal turns into SIGINT and end-of-input.
What the user sees is checked on the screen; what was stored, through the API.

The pty found one bug: the arrow keys went into the message as text (input() without
readline), and with readline loaded under rich's own prompt, Ctrl-A or Up drew over the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.fake_llm import BEFORE_FAULT, TOKENS, FakeModelServer
from support.server import LiveServer, make_settings, wait_until
from support.terminal import PROMPT, TIMEOUT, USAGE, chatting, screen, started

pexpect = pytest.importorskip("pexpect")

REPLY = "".join(TOKENS)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer("ok") as model:
        yield model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: FakeModelServer) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("server")
    settings = make_settings(data, llm_url=upstream.url, warm_next_turn=False)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(timeout=TIMEOUT) as http:
        yield http


@pytest.fixture
def chat(server: LiveServer, tmp_path: Path) -> Iterator[Any]:
    with chatting(server, tmp_path, "--persona", "pippa", "--strategy", "window") as child:
        yield child


def exits_cleanly(child: Any) -> None:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus, screen(child))


def messages(api: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/sessions/{session_id}/messages")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def test_a_typed_message_streams_a_reply_that_is_stored(chat: Any, api: httpx.Client) -> None:
    session_id = started(chat)
    banner = screen(chat)
    assert "persona Pippa" in banner and "memory window" in banner and "/help" in banner
    assert "아빠, 왔어?" in banner  # the greeting, before the first prompt

    chat.sendline("I fixed the bike today.")
    chat.expect("Pippa")
    for token in TOKENS:  # the reply as it streams in, token by token
        chat.expect_exact(token)
    chat.expect(USAGE)
    assert int(chat.match.group(3)) == len(TOKENS)
    chat.expect(PROMPT)

    stored = messages(api, session_id)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "I fixed the bike today.", "complete"),
        ("assistant", REPLY, "complete"),
    ]
    chat.sendline("/quit")
    exits_cleanly(chat)


def test_help_shows_the_argument_hints(chat: Any) -> None:
    started(chat)
    chat.sendline("/help")
    chat.expect(PROMPT)  # after the whole list
    shown = " ".join(screen(chat).split())
    # rich markup used to eat "[id]" and "[persona]" as unknown tags
    assert "/context [id] what went into the window" in shown
    assert "/new [persona] start a new session" in shown
    for name in ("/memory", "/personas", "/strategies", "/help", "/quit leave"):
        assert name in shown
    chat.sendeof()  # Ctrl-D at the prompt leaves
    exits_cleanly(chat)


def test_new_with_another_persona_takes_its_default_strategy(chat: Any, api: httpx.Client) -> None:
    first = started(chat)
    assert api.get(f"/v1/sessions/{first}").json()["memory"]["strategy"] == "window"

    chat.sendline("/new cody")
    chat.expect(r"new session (ses_\w+) · persona Cody · memory (\w+)")
    second, shown_strategy = chat.match.group(1), chat.match.group(2)
    chat.expect(PROMPT)
    assert second != first
    session = api.get(f"/v1/sessions/{second}").json()
    # cody's own default (personas/cody.yaml), not the window this session was started with
    assert (session["persona"], session["memory"]["strategy"]) == ("cody", "summary_buffer")
    assert shown_strategy == "summary_buffer"

    chat.sendline("/new")  # the same persona keeps the session's strategy
    chat.expect(r"new session (ses_\w+) · persona Cody · memory summary_buffer")
    chat.expect(PROMPT)
    chat.sendintr()  # Ctrl-C at the prompt (no reply to stop) leaves too
    exits_cleanly(chat)


def test_context_prints_the_parts_of_the_last_reply(chat: Any, api: httpx.Client) -> None:
    session_id = started(chat)
    chat.sendline("/context")
    chat.expect("no reply yet: send a message first")
    chat.expect(PROMPT)

    chat.sendline("Remember the red kite.")
    chat.expect(r"\d+ generated")
    chat.expect(PROMPT)
    reply_id = messages(api, session_id)[-1]["id"]
    chat.sendline("/context")
    chat.expect(rf"context of reply #{reply_id}")
    chat.expect(r"(\d+) of (\d+) budget tokens")
    table = screen(chat)
    chat.expect(PROMPT)
    parts = api.get(f"/v1/sessions/{session_id}/context/{reply_id}").json()["parts"]
    assert {"persona", "new"} <= {p["kind"] for p in parts}
    for part in parts:  # each part a row: kind, tokens, messages
        row = rf"\b{part['kind']}\b\W+{part['tokens']}\W+{len(part.get('messages') or [])}\b"
        assert re.search(row, table), f"no row for {part['kind']} in:\n{table}"
    assert "red kite" in table  # the new message's preview
    chat.sendline("/quit")
    exits_cleanly(chat)


def test_ctrl_c_stops_a_reply_and_the_chat_goes_on(
    chat: Any, api: httpx.Client, upstream: FakeModelServer
) -> None:
    session_id = started(chat)
    upstream.mode = "hold"  # a few tokens, then the model waits: Ctrl-C lands mid-reply
    try:
        chat.sendline("Tell me a long story.")
        for token in TOKENS[:BEFORE_FAULT]:
            chat.expect_exact(token)
        chat.sendintr()
        chat.expect("stopped; the partial reply is kept as interrupted")
        chat.expect(PROMPT)
        assert chat.isalive()
        stored = wait_until(
            lambda: [m for m in messages(api, session_id) if m["status"] == "interrupted"],
            "the stopped reply stored as interrupted",
            timeout=TIMEOUT,
        )
        assert stored[0]["role"] == "assistant"
        assert REPLY.startswith(stored[0]["content"])
    finally:
        upstream.mode = "ok"
        upstream.release()

    chat.sendline("And now a short one.")  # the chat goes on: the next turn is whole
    chat.expect(r"\d+ generated")
    chat.expect(PROMPT)
    assert messages(api, session_id)[-1]["content"] == REPLY
    chat.sendeof()
    exits_cleanly(chat)


def drawn_line(raw: str) -> str:
    """The last line of the screen after `raw` is drawn on it: the few terminal codes line
    editing uses (carriage return, backspace, cursor right/left, insert and erase characters,
    erase to the end of the line), other codes (colours, modes) ignored."""
    cells: list[str] = []
    col = 0
    raw = raw.replace("\x01", "").replace("\x02", "")
    for m in re.finditer(
        r"\x1b\[([0-9;?]*)([A-Za-z@])|\x1b[=>]|\r\n|\n|\r|\x08|\x07|(.)", raw, re.S
    ):
        arg, code, char = m.group(1), m.group(2), m.group(3)
        n = int(arg) if arg and arg.isdigit() else 1
        if char is not None:
            cells.extend(" " * (col + 1 - len(cells)))
            cells[col] = char
            col += 1
        elif m.group(0) in ("\r\n", "\n"):  # a new line: the last one starts
            cells, col = [], 0
        elif m.group(0) == "\r":
            col = 0
        elif m.group(0) == "\x08":
            col = max(col - 1, 0)
        elif code == "C":
            col += n
        elif code == "D":
            col = max(col - n, 0)
        elif code == "@":
            cells[col:col] = [" "] * n
        elif code == "P":
            del cells[col : col + n]
        elif code == "K":
            del cells[col:]
    return "".join(cells).rstrip()


def test_arrow_keys_and_history_edit_the_line(chat: Any, api: httpx.Client) -> None:
    session_id = started(chat)
    chat.send("I fixed the bke")
    chat.send("\x1b[D\x1b[D")  # Left, Left: back over "ke"
    chat.send("i\r")
    chat.expect(r"\d+ generated")
    chat.expect(PROMPT)
    # the arrows moved the cursor: they were not sent as text ("bke\x1b[D\x1b[Di")
    assert messages(api, session_id)[0]["content"] == "I fixed the bike"

    chat.send("\x1b[A")  # Up: the last line again
    chat.send("\x01")  # Ctrl-A: to the start of the line, which is after the prompt
    chat.send("So \r")
    chat.expect_exact("\n")  # the line accepted
    # the prompt stays: readline knows it, so Ctrl-A stops after it rather than drawing over it
    assert drawn_line("you › " + chat.before) == "you › So I fixed the bike"
    chat.expect(r"\d+ generated")
    chat.expect(PROMPT)
    assert messages(api, session_id)[2]["content"] == "So I fixed the bike"
    chat.sendline("/quit")
    exits_cleanly(chat)
