"""What every `memento` command shares: the two consoles, logging, Settings from the flags."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from rich.console import Console

from app.config import Settings

console = Console(stderr=True)
out = Console()


def setup_logging(level: str = "INFO") -> None:
    if not sys.stderr.isatty():
        # piped to a file or a collector: plain lines (rich wraps at 80 columns, mid-word)
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
            force=True,
        )
        return
    from rich.logging import RichHandler

    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "model", None):
        overrides["model"] = args.model
    return Settings(**overrides)
