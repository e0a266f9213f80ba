"""The `memento` command: serve, generate, personas.

More subcommands plug in without touching this file: any module `app/cli_<name>.py` that
defines `register(subparsers)` is found and asked to add its parser (set `func=` on it with
`set_defaults`; the function takes the parsed args and returns an exit code).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import ipaddress
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

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


# -- serve -------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def embedder_mismatch(settings: Settings) -> str | None:
    """Why the vector index cannot serve the configured embedder, or None. Opens the index
    without loading any model (the identity is the embedder's name and dimension)."""
    from memory.embedder_choice import make_embedder
    from memory.vector_index import EmbedderMismatch, VectorIndex

    try:
        # no worker: only the embedder's identity (name, dim) is read here, no model runs
        embedder = make_embedder(settings.embedder, None)  # type: ignore[arg-type]
        VectorIndex.open(settings.data_dir, settings.chroma_url, embedder)
    except EmbedderMismatch as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - anything else is the service start-up's to report
        return None
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args, host=args.host, port=args.port)
    insecure_ok = args.force or settings.allow_insecure_bind
    if settings.auth == "off" and not is_loopback(settings.host) and not insecure_ok:
        console.print(
            f"[red]refusing to listen on {settings.host}[/]: auth is off, so anyone who can "
            "reach this address could read every conversation. Use 127.0.0.1, turn auth on "
            "(MEMENTO_AUTH=required), or pass --force / MEMENTO_ALLOW_INSECURE_BIND=1."
        )
        return 2
    # one server per data directory, and a free port: both checked before anything loads
    # (before, a second `make run` ran recovery on the live server's replies, printed its
    # address and loaded the model, and only then failed with Errno 98)
    from app import data_lock
    from app.listen import PortBusy, bind

    lock: data_lock.DataDirLock | None = None
    if data_lock.needs_lock(settings):
        try:
            lock = data_lock.acquire(settings.data_dir)
        except data_lock.DataDirBusy as busy:
            console.print(
                f"[red]cannot start:[/] {busy}. Use that server (`memento chat` finds it), "
                "stop it, or give this one its own MEMENTO_DATA_DIR."
            )
            return 2
    try:
        sock = bind(settings.host, settings.port)
    except PortBusy as exc:
        console.print(f"[red]cannot start:[/] {exc}")
        if lock is not None:
            lock.release()
        return 2
    try:
        port = sock.getsockname()[1]
        bare = settings.host.strip("[]")
        url = f"http://{f'[{bare}]' if ':' in bare else bare}:{port}"
        if lock is not None:
            lock.describe_self(url=url, host=settings.host, port=port)
        return _serve(args, settings, sock, url)
    finally:
        sock.close()
        if lock is not None:
            lock.release()


def _serve(args: argparse.Namespace, settings: Settings, sock: Any, url: str) -> int:
    # a bad persona file is the commonest start-up failure: say so before the model loads
    from app.personas.errors import PersonaError
    from app.personas.loader import load_personas

    try:
        load_personas(settings.personas_dir, settings.max_persona_bytes)
    except PersonaError as exc:
        console.print(f"[red]cannot start: invalid persona[/] {exc}")
        return 2
    # so is an index built by another embedder than MEMENTO_EMBEDDER: say what to do
    mismatch = embedder_mismatch(settings)
    if mismatch:
        console.print(f"[red]cannot start:[/] {mismatch}")
        return 2

    import uvicorn

    from app.main import create_app

    setup_logging(args.log_level.upper())
    app = create_app(settings)
    console.print(f"Memento on {url} (loading the model...)")
    config = uvicorn.Config(
        app,
        log_config=None,  # our rich handler on the root logger
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    with _exit_0_after_graceful_sigterm(), contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])  # the socket bound above, before the model load
    return 0 if server.started else 3


@contextlib.contextmanager
def _exit_0_after_graceful_sigterm() -> Iterator[None]:
    """uvicorn handles SIGTERM itself (a graceful shutdown), then re-raises it against the
    handler that was there before it started, so with the default handler the process dies by
    the signal (exit -15) although it stopped cleanly. A no-op handler there lets the re-raise
    return and `memento serve` exit 0. The previous handler is back once uvicorn returns."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; uvicorn then handles no signals either
        return
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# -- generate ----------------------------------------------------------------------------------
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


# -- personas ----------------------------------------------------------------------------------
def cmd_personas_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from app.personas.loader import load_personas

    settings = settings_from(args)
    personas = load_personas(settings.personas_dir, settings.max_persona_bytes)
    table = Table("id", "name", "memory", "description")
    for p in personas.values():
        table.add_row(p.id, p.name, p.memory.strategy, p.description)
    out.print(table)
    return 0


def cmd_personas_show(args: argparse.Namespace) -> int:
    import yaml

    from app.personas.loader import load_personas

    settings = settings_from(args)
    personas = load_personas(settings.personas_dir, settings.max_persona_bytes)
    persona = personas.get(args.id)
    if persona is None:
        console.print(f"[red]no persona {args.id!r}[/] (known: {', '.join(personas)})")
        return 1
    # Plain stdout, not rich: rich wraps long values at the terminal's width (80 columns when
    # redirected) and reads [brackets] as markup, and `show pippa > p.yaml` must give a file
    # that parses. The rendered prompt follows as YAML comments for the same reason.
    text = yaml.safe_dump(persona.model_dump(), allow_unicode=True, sort_keys=False, width=10**6)
    rendered = persona.render_system_prompt().splitlines()
    comments = "".join(f"# {line}".rstrip() + "\n" for line in rendered)
    sys.stdout.write(f"{text}\n# --- system prompt as the model sees it ---\n{comments}")
    return 0


def cmd_personas_validate(args: argparse.Namespace) -> int:
    from app.personas.errors import PersonaError
    from app.personas.loader import PERSONA_SUFFIXES, load_persona_file

    settings = settings_from(args)
    paths = [Path(p) for p in args.files] or sorted(
        p for p in settings.personas_dir.glob("*") if p.suffix in PERSONA_SUFFIXES
    )
    if not paths:
        console.print(f"[red]no persona files in {settings.personas_dir}[/]")
        return 1
    bad = 0
    for path in paths:
        try:
            persona = load_persona_file(path, settings.max_persona_bytes)
            if args.files:
                persona = _as_imported(path, persona, settings.max_persona_bytes)
        except PersonaError as exc:
            bad += 1
            out.print(f"[red]✗[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        else:
            # soft_wrap: one line per file however long the path (rich wraps at 80 when piped)
            line = f"[green]✓[/] {escape(str(path))}: {persona.id} ({escape(persona.name)})"
            out.print(line, highlight=False, soft_wrap=True)
    return 1 if bad else 0


def _as_imported(path: Path, persona: Any, max_bytes: int) -> Any:
    """A file named on the command line is usually a card about to be imported: report the id
    `personas import` gives it (from the card's name), not the file name's (seraphina_v2.json
    was reported as `seraphina_v2`, then imported as `seraphina`)."""
    from app.personas.errors import PersonaError
    from app.personas.loader import parse_persona_text

    try:
        imported, fmt = parse_persona_text(
            path.read_text(encoding="utf-8"), str(path), default_id=None, max_bytes=max_bytes
        )
    except PersonaError:
        return persona  # our own form without an id: import needs --id, the file name stands
    return imported if fmt == "card" else persona


def cmd_personas_import(args: argparse.Namespace) -> int:
    import yaml

    from app.personas.errors import PersonaError
    from app.personas.loader import parse_persona_upload

    settings = settings_from(args)
    path = Path(args.file)
    try:
        # bytes: a card PNG is read as one, anything else as UTF-8 text (YAML/JSON, a card)
        persona, fmt = parse_persona_upload(
            path.read_bytes(), str(path), args.id, settings.max_persona_bytes
        )
    except OSError as exc:
        console.print(f"[red]cannot read {path}[/]: {exc.strerror or exc}")
        return 1
    except PersonaError as exc:
        console.print(f"[red]invalid persona[/] {exc}")
        return 1
    target_dir = Path(args.dir) if args.dir else settings.personas_dir
    target = target_dir / f"{persona.id}.yaml"
    if target.exists() and not args.force:
        console.print(f"[red]{target} exists[/]; pass --force to replace it")
        return 1
    target_dir.mkdir(parents=True, exist_ok=True)
    data = persona.model_dump(mode="json")
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    out.print(f"imported {path} ({fmt}) as persona {persona.id!r} -> {target}")
    # personas are read at start-up: a running server does not see the new file (issue 17)
    out.print(
        "a running server loads personas at start-up: restart it, or upload the card to it "
        "instead (POST /v1/personas)",
        markup=False,
    )
    return 0


# -- wiring ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memento", description="A persistent-memory chatbot service on a local model."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the HTTP server (API, OpenAI-compatible, web page)")
    p.add_argument("--host", default=None, help="default 127.0.0.1 (MEMENTO_HOST)")
    p.add_argument("--port", type=int, default=None, help="default 8000 (MEMENTO_PORT)")
    p.add_argument("--model", default=None, help="GGUF path, mlx-lm model dir or HF id")
    p.add_argument("--force", action="store_true", help="allow a non-loopback host with auth off")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("generate", help="one-shot streamed completion to stdout")
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--system", default=None, help="a system message")
    p.add_argument("--model", default=None, help="GGUF path, mlx-lm model dir or HF id")
    p.add_argument("-v", "--verbose", action="store_true", help="log loading and token usage")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("personas", help="list, show, validate or import personas")
    psub = p.add_subparsers(dest="personas_command", required=True, metavar="ACTION")
    q = psub.add_parser("list", help="the personas in personas/ (MEMENTO_PERSONAS_DIR)")
    q.set_defaults(func=cmd_personas_list)
    q = psub.add_parser("show", help="one persona and its rendered system prompt")
    q.add_argument("id")
    q.set_defaults(func=cmd_personas_show)
    q = psub.add_parser("validate", help="check persona files (default: all of personas/)")
    q.add_argument("files", nargs="*")
    q.set_defaults(func=cmd_personas_validate)
    q = psub.add_parser(
        "import", help="a persona file or Character Card V1/V2/V3 (JSON or PNG) -> personas/"
    )
    q.add_argument("file")
    q.add_argument("--id", default=None, help="the persona id (default: from the file)")
    q.add_argument("--dir", default=None, help="target directory (default: personas/)")
    q.add_argument("--force", action="store_true", help="replace an existing file")
    q.set_defaults(func=cmd_personas_import)

    for module in plugin_modules():
        module.register(sub)
    return parser


def plugin_modules() -> list[Any]:
    import app

    found = []
    for info in sorted(pkgutil.iter_modules(app.__path__), key=lambda i: i.name):
        if info.name.startswith("cli_"):
            module = importlib.import_module(f"app.{info.name}")
            if hasattr(module, "register"):
                found.append(module)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
