"""`memento chat`'s /context shows the lore part: each entry with why it fired, what the
budget dropped, and the Context's notes."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from app.cli.chat import ChatRepl

CONTEXT: dict[str, Any] = {
    "budget": 1000,
    "total_tokens": 120,
    "notes": ["lore: 1 entries fired but did not fit: 'Moon' (lb_1)"],
    "parts": [
        {
            "kind": "persona",
            "tokens": 20,
            "messages": [{"role": "system", "content": "You are Mira."}],
        },
        {
            "kind": "lore",
            "tokens": 30,
            "messages": [{"role": "system", "content": "World info: Ember is a red dragon."}],
            "fired": [
                {
                    "book": "lb_1",
                    "entry": "7",
                    "name": "Ember",
                    "reason": "key",
                    "why": "key '용' in the new message",
                }
            ],
            "dropped": [
                {
                    "book": "lb_1",
                    "entry": "9",
                    "name": "Moon",
                    "reason": "key",
                    "why": "key 'moon' in message #4; dropped: over the lore part's room",
                }
            ],
        },
        {"kind": "new", "tokens": 10, "messages": [{"role": "user", "content": "용한테 가자"}]},
    ],
}


class StubClient:
    def context(self, session_id: str, message_id: int) -> dict[str, Any]:
        assert (session_id, message_id) == ("ses_1", 5)
        return CONTEXT


def test_context_lists_lore_entries_with_their_reasons() -> None:
    console = Console(record=True, width=200)
    repl = ChatRepl(StubClient(), console, None)  # type: ignore[arg-type]
    repl.session, repl.last_reply_id = {"id": "ses_1"}, 5
    repl.show_context("")
    out = console.export_text()
    assert "lore: why each entry fired" in out
    assert "Ember" in out and "key '용' in the new message" in out
    assert "Moon" in out and "dropped: over the lore part's room" in out
    assert "did not fit: 'Moon'" in out
