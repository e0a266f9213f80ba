"""The `memento` command: its registry of subcommands, the parser and `main`.

Each subcommand lives in its own module of app/cli/ with a `register(subparsers)` that adds
its parser and sets `func=` on it with `set_defaults` (the function takes the parsed args and
returns an exit code). A new command is a new module plus one entry in `COMMANDS`: the list is
explicit, so `memento --help` lists them in this order and no file name is load-bearing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from app.cli import chat, generate, keys, maintenance, personas, serve
from app.cli.common import console
from app.config import settings_problem


class Command(Protocol):
    """A module of app/cli/ that adds one subcommand (or a group of them) to `memento`."""

    def register(self, sub: Any, /) -> None: ...


# serve, generate, personas first, then chat, keys, reindex: the order `memento --help` shows
COMMANDS: tuple[Command, ...] = (serve, generate, personas, chat, keys, maintenance)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memento", description="A persistent-memory chatbot service on a local model."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ValidationError as exc:
        # a bad MEMENTO_* value: its name and why, not a traceback through pydantic
        problem = settings_problem(exc)
        if problem is None:
            raise
        console.print(f"[red]bad setting:[/] {problem}", highlight=False)
        return 2
