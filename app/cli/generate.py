"""`memento generate`: one streamed completion to stdout, straight from the engine (no
session, no memory)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from app.cli.common import console, settings_from, setup_logging


def cmd_generate(args: argparse.Namespace) -> int:
    from app.blas import load_blas

    if args.verbose:
        setup_logging("INFO")
    load_blas()
    from app.llm.factory import load_engine
    from app.llm.types import GenerationParams
    from app.llm.worker import MLXWorker

    settings = settings_from(args)
    worker = MLXWorker()
    try:
        with console.status("loading the model..."):
            engine = load_engine(settings, worker)
        messages = []
        if args.system:
            messages.append({"role": "system", "content": args.system})
        messages.append({"role": "user", "content": args.prompt})
        params = GenerationParams(
            temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
        )

        async def run() -> Any:
            usage = None
            async for chunk in engine.stream(messages, params):
                if chunk.text:
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
                if chunk.usage is not None:
                    usage = chunk.usage
            sys.stdout.write("\n")
            await engine.aclose()
            return usage

        usage = asyncio.run(run())
        if usage is not None and args.verbose:
            console.print(
                f"[dim]{engine.model_id}: {usage.prompt_tokens} prompt tokens, "
                f"{usage.completion_tokens} completion tokens[/]"
            )
    finally:
        worker.shutdown()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("generate", help="one-shot streamed completion to stdout")
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--system", default=None, help="a system message")
    p.add_argument("--model", default=None, help="GGUF path, mlx-lm model dir or HF id")
    p.add_argument("-v", "--verbose", action="store_true", help="log loading and token usage")
    p.set_defaults(func=cmd_generate)
