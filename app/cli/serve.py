"""`memento serve`: the HTTP server (API, OpenAI-compatible, web page), with its guards: a
loopback address unless auth is on, one server per data directory, a free port, valid personas
and a vector index that fits the configured embedder, all checked before the model loads."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
from collections.abc import Iterator
from typing import Any

from app.cli.common import console, settings_from, setup_logging
from app.config import Settings


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


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP server (API, OpenAI-compatible, web page)")
    p.add_argument("--host", default=None, help="default 127.0.0.1 (MEMENTO_HOST)")
    p.add_argument("--port", type=int, default=None, help="default 8000 (MEMENTO_PORT)")
    p.add_argument("--model", default=None, help="GGUF path, mlx-lm model dir or HF id")
    p.add_argument("--force", action="store_true", help="allow a non-loopback host with auth off")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)
