"""`memento chat`: talk to a persona from the terminal, with streamed replies.

Against a running server (`--url`, or the one that holds the data directory), or in-process
(app/cli/local_server.py): then the app is served by uvicorn on a loopback port in a background
thread of this process. In-process goes through real HTTP rather
than httpx's ASGITransport because that transport buffers whole responses, and streaming is the
point. Either way it talks through app/cli/chat_client.py, which speaks only the public API.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from app.cli.chat_client import ApiError, ChatClient, delta_text
from app.cli.drafts import DraftWatch, watching
from app.cli.local_server import LocalServer, running_server
from app.config import Settings

# a backslash before [id] and [persona]: rich would read them as markup tags and drop them
HELP = """[bold]/context[/] [dim]\\[id][/]  what went into the window for the last (or given) reply
[bold]/memory[/]        the session's summary, pinned facts and recallable items
[bold]/new[/] [dim]\\[persona][/]  start a new session (same persona unless named)
[bold]/personas[/]      the personas you can talk to
[bold]/strategies[/]    the memory strategies a session can use (--strategy)
[bold]/help[/]          this list
[bold]/quit[/]          leave (Ctrl-D works too; Ctrl-C stops a reply)"""


PROMPT = "[bold cyan]you ›[/] "
QUIET_AFTER_429_S = 30.0  # drafts must not eat the rate limit the messages need (as the page)
_SGR = re.compile(r"(\x1b\[[0-9;]*m)")


def line_editing() -> bool:
    """Load readline, when this Python has it and the chat runs on a terminal: without it
    input() takes the arrow keys as text ("bke" Left Left "i" sends "bke\\x1b[D\\x1b[Di") and
    keeps no history for Up. True if loaded."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    try:
        import readline  # noqa: F401 - input() uses it once imported
    except ImportError:  # Windows, or a Python built without it
        return False
    return True


# -- the chat loop --------------------------------------------------------------------------------
class ChatRepl:
    def __init__(
        self,
        client: ChatClient,
        console: Console,
        max_tokens: int | None,
        readline: bool = False,
    ) -> None:
        self.client, self.console, self.max_tokens = client, console, max_tokens
        self.readline = readline  # input() edits the line: it must draw the prompt itself
        self.session: dict[str, Any] = {}
        self.persona: dict[str, Any] = {}
        self.last_reply_id: int | None = None
        self.drafts = DraftWatch() if readline else None
        self._quiet_until = 0.0

    # sessions
    def open(self, session_id: str | None, persona: str | None, strategy: str | None) -> None:
        if session_id:
            self.session = self.client.session(session_id)
            self._load_persona()
            history = self.client.messages(session_id)
            self._banner(resumed=True)
            for m in history:
                self._show_message(m)
            replies = [m for m in history if m["role"] == "assistant"]
            self.last_reply_id = replies[-1]["id"] if replies else None
        else:
            self.session = self.client.create_session(persona, strategy)
            self._load_persona()
            self.last_reply_id = None
            self._banner(resumed=False)
            # the session's greeting: her returning one when she already knows the user
            greeting = self.session.get("greeting") or self.persona.get("greeting")
            if greeting:
                self._say(greeting)

    def _load_persona(self) -> None:
        try:
            self.persona = self.client.persona(self.session["persona"])
        except ApiError:
            self.persona = {"id": self.session["persona"], "name": self.session["persona"]}

    def _name(self) -> str:
        return str(self.persona.get("name") or self.session.get("persona") or "assistant")

    def _banner(self, resumed: bool) -> None:
        memory = self.session.get("memory") or {}
        self.console.print(
            f"[dim]{'resumed' if resumed else 'new'} session {escape(self.session['id'])} · "
            f"persona {escape(self._name())} · memory {escape(str(memory.get('strategy')))} · "
            "/help for commands[/]"
        )

    def _say(self, text: str) -> None:
        self.console.print(f"[bold magenta]{escape(self._name())}[/] {escape(text)}")

    def _show_message(self, m: dict[str, Any]) -> None:
        if m["role"] == "user":
            self.console.print(f"[bold cyan]you[/] {escape(m['content'])}")
        else:
            status = m.get("status")
            suffix = f" [dim]({status})[/]" if status not in (None, "complete") else ""
            self._say(m["content"])
            if suffix:
                self.console.print(suffix)

    # one turn
    def send(self, text: str) -> None:
        body: dict[str, Any] = {"content": text}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        self.console.print(f"[bold magenta]{escape(self._name())}[/] ", end="")
        out = self.console.file
        got_text = False
        try:
            for event, data in self.client.stream(self.session["id"], body):
                if event == "delta":
                    piece = delta_text(data)
                    got_text = got_text or bool(piece.strip())
                    out.write(piece)
                    out.flush()
                elif event == "done":
                    self.last_reply_id = (data.get("reply") or {}).get("id")
                    usage = data.get("usage") or {}
                    out.write("\n")
                    self.console.print(
                        f"[dim]  {usage.get('prompt_tokens', '?')} prompt tokens "
                        f"({usage.get('cached_tokens', 0)} cached), "
                        f"{usage.get('completion_tokens', '?')} generated[/]"
                    )
                elif event == "error":
                    err = data.get("error", data) if isinstance(data, dict) else {"message": data}
                    raise ApiError(500, str(err.get("message")), err.get("field"))
        except KeyboardInterrupt:
            out.write("\n")
            self.console.print("[yellow]stopped; the partial reply is kept as interrupted[/]")
        if not got_text and self.last_reply_id is None:
            out.write("\n")

    # slash commands
    def command(self, line: str) -> bool:
        """Run a slash command; False means quit."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        handlers: dict[str, Callable[[str], None]] = {
            "context": self.show_context,
            "memory": self.show_memory,
            "new": self.new,
            "personas": self.show_personas,
            "strategies": self.show_strategies,
            "help": lambda _: self.console.print(HELP),
        }
        if name in ("quit", "exit", "q"):
            return False
        handler = handlers.get(name)
        if handler is None:
            self.console.print(f"[red]unknown command /{escape(name)}[/]; /help lists them")
        else:
            handler(arg)
        return True

    def show_context(self, arg: str) -> None:
        message_id = int(arg) if arg.isdigit() else self.last_reply_id
        if message_id is None:
            self.console.print("[dim]no reply yet: send a message first[/]")
            return
        ctx = self.client.context(self.session["id"], message_id)
        table = Table(title=f"context of reply #{message_id}", title_justify="left", expand=True)
        table.add_column("kind", style="bold")
        table.add_column("tokens", justify="right")
        table.add_column("msgs", justify="right")
        table.add_column("preview", ratio=1, overflow="ellipsis", no_wrap=True)
        for part in ctx.get("parts", []):
            messages = part.get("messages") or []
            text = " | ".join(m.get("content", "") for m in messages)
            table.add_row(
                part["kind"],
                str(part["tokens"]),
                str(len(messages)),
                escape(" ".join(text.split())[:300]),
            )
        table.caption = f"{ctx.get('total_tokens')} of {ctx.get('budget')} budget tokens"
        self.console.print(table)
        self.show_lore(ctx)
        for note in ctx.get("notes") or []:
            self.console.print(f"[yellow]{escape(note)}[/]")

    def show_lore(self, ctx: dict[str, Any]) -> None:
        """The lore part's entries with why each fired (and what the budget dropped)."""
        part = next((p for p in ctx.get("parts", []) if p.get("kind") == "lore"), None)
        if part is None:
            return
        table = Table(title="lore: why each entry fired", title_justify="left", expand=True)
        table.add_column("entry", style="bold")
        table.add_column("book", style="dim")
        table.add_column("why", ratio=1)
        for f in part.get("fired") or []:
            table.add_row(escape(f.get("name") or f["entry"]), escape(f["book"]), escape(f["why"]))
        for f in part.get("dropped") or []:
            name = escape(f.get("name") or f["entry"])
            table.add_row(f"[dim]{name}[/]", escape(f["book"]), f"[dim]{escape(f['why'])}[/]")
        self.console.print(table)

    def show_memory(self, _: str = "") -> None:
        memory = self.client.memory(self.session["id"])
        summary = memory.get("summary") or "(no summary yet)"
        self.console.print(Panel(escape(summary), title="summary", title_align="left"))
        table = Table(title="pinned facts", title_justify="left", expand=True)
        table.add_column("source", style="dim")
        table.add_column("fact", ratio=1)
        for fact in memory.get("pinned", []):
            table.add_row(fact.get("source", ""), escape(fact.get("text", "")))
        self.console.print(table)
        items = memory.get("items") or []
        self.console.print(
            f"[dim]strategy {memory.get('strategy')} · {len(items)} recallable messages · "
            f"{len(memory.get('forgotten') or [])} forgotten[/]"
        )

    def new(self, arg: str) -> None:
        # the same persona keeps this session's strategy; another persona brings its own default
        persona = arg.strip() or self.session.get("persona")
        memory = self.session.get("memory") or {}
        same = persona == self.session.get("persona")
        self.open(None, persona, memory.get("strategy") if same else None)

    def show_personas(self, _: str = "") -> None:
        table = Table(title="personas", title_justify="left", expand=True)
        for col in ("id", "name", "memory", "description"):
            table.add_column(col, ratio=1 if col == "description" else None)
        for p in self.client.personas():
            table.add_row(
                escape(p["id"]),
                escape(p.get("name", "")),
                str(p.get("default_strategy") or ""),
                escape(p.get("description", "")),
            )
        self.console.print(table)

    def show_strategies(self, _: str = "") -> None:
        table = Table(title="memory strategies", title_justify="left", expand=True)
        table.add_column("name", style="bold")
        table.add_column("description", ratio=1)
        for s in self.client.strategies():
            table.add_row(escape(s["name"]), escape(s.get("description", "")))
        self.console.print(table)

    def read_line(self) -> str:
        if not self.readline:
            return self.console.input(PROMPT)
        # Handed to input() rather than printed before it (as Console.input does): readline
        # redraws the line from the prompt it knows, and with none it would draw over ours on
        # Up, Ctrl-A or a long line. Its colour codes bracketed by \1 \2, which readline reads
        # as "takes no room on the screen".
        with self.console.capture() as shown:
            self.console.print(PROMPT, end="")
        prompt = _SGR.sub("\x01\\1\x02", shown.get())
        if self.drafts is None:
            return input(prompt)
        import readline  # loaded by line_editing() already; not importable everywhere

        with watching(readline.get_line_buffer, self.drafts, self._tell_draft):
            return input(prompt)

    def _tell_draft(self, text: str) -> None:
        """Best effort, like the page's: a draft the server refuses changes nothing shown."""
        session_id = self.session.get("id")
        if not session_id or text.lstrip().startswith("/") or time.monotonic() < self._quiet_until:
            return
        try:
            self.client.draft(session_id, text, self.max_tokens)
        except ApiError as e:
            if e.status == 429:
                self._quiet_until = time.monotonic() + QUIET_AFTER_429_S

    def loop(self) -> None:
        while True:
            try:
                line = self.read_line()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        return
                else:
                    self.send(line)
            except ApiError as e:
                self.console.print(f"[red]error:[/] {escape(str(e))}")


# -- entry points ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persona", help="persona id for a new session (default: the server's)")
    parser.add_argument("--session", help="resume this session id instead of starting one")
    parser.add_argument("--url", help="a running Memento server; default: start one in-process")
    parser.add_argument("--strategy", help="memory strategy for a new session")
    parser.add_argument("--max-tokens", type=int, help="cap on each reply's length in tokens")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("MEMENTO_API_KEY"),
        help="API key when the server requires one (env MEMENTO_API_KEY)",
    )


def register(subparsers: Any) -> None:
    """Add `chat` to the `memento` command's argparse subparsers."""
    parser = subparsers.add_parser("chat", help="chat with a persona in the terminal")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    server: LocalServer | None = None
    url = args.url
    code = 0
    try:
        if url is None:
            # the data directory's server, when one runs: the same conversations, and no
            # second process on its data
            url = running_server(Settings())
            if url is not None:
                console.print(f"[dim]using the running server at {escape(url)}[/]")
        if url is None:
            server = LocalServer()
            server.start(console)
            url = server.url
        client = ChatClient(url, api_key=args.api_key)
        try:
            health = client.health()
            console.print(
                f"[dim]{escape(str(health.get('model_id')))} · context "
                f"{health.get('context_window')} tokens · {escape(url)}[/]"
            )
            repl = ChatRepl(client, console, args.max_tokens, readline=line_editing())
            repl.open(args.session, args.persona, args.strategy)
            repl.loop()
        finally:
            client.close()
    except ApiError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        code = 1
    finally:
        if server is not None:
            server.stop()
            # The app is shut down and its store closed. Leave without running native static
            # destructors: a native thread still winding down at interpreter exit can abort
            # the process ("terminate called without an active exception", exit 134).
            if sys.exc_info()[0] is None:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="memento chat", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
