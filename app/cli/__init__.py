"""The `memento` command line (the `memento` console script is `app.cli:main`).

- `commands.py`: the explicit registry of subcommands, the parser and `main`;
- `common.py`: the consoles, logging and Settings-from-flags every command shares;
- one module per command: `serve.py`, `generate.py`, `personas.py`, `chat.py` (the terminal
  chat, over `chat_client.py`, which speaks only the public HTTP API), `keys.py`,
  `maintenance.py` (`reindex`).
"""

from __future__ import annotations

from app.cli.commands import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
