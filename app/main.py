"""The FastAPI app: routes, error handlers, limits, and a lifespan that owns every heavy resource.

Start-up order puts the cheap checks that can fail (persona files, database) before the
seconds-long model load, so a bad persona file stops the server at once with its name and field.
Shutdown interrupts in-flight replies (stored as `interrupted`), then stops the engine, the
index, the store and finally the MLX worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings, get_settings
from app.deps import Closeable, Services
from app.errors import error_body, install_error_handlers
from app.version import VERSION

log = logging.getLogger("memento")

WEB_DIR = Path(__file__).parent / "web"


class StartupError(RuntimeError):
    """The service cannot start; the message says what to fix."""


# -- body size limit ----------------------------------------------------------------------------
class BodyLimitMiddleware:
    """413 for request bodies over `limit` bytes, by Content-Length or as they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(send)
                return
        seen = 0
        started = rejected = False

        async def limited() -> Message:
            # Raising here would be turned into a 400 by the body parser: answer 413 ourselves
            # and tell the app the client left, so it stops reading.
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 went out; whatever the app answers goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send: Send) -> None:
        import json

        body = json.dumps(
            error_body("too_large", f"request body exceeds {self.limit} bytes", "body", 413)
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


# -- lifespan -----------------------------------------------------------------------------------
async def _step(what: str, fn: Callable[[], Awaitable[Any]], tick: float = 5.0) -> Any:
    """Run one start-up step, logging progress while it takes long (the model load)."""
    start = time.perf_counter()
    log.info("%s...", what)
    task = asyncio.ensure_future(fn())
    while True:
        done, _ = await asyncio.wait([task], timeout=tick)
        if done:
            break
        log.info("... still %s (%.0f s)", what, time.perf_counter() - start)
    result = task.result()
    log.info("%s: done in %.1f s", what, time.perf_counter() - start)
    return result


async def start_services(settings: Settings) -> Services:
    """Build every resource, in the order that fails fastest. Cleans up on failure."""
    services = Services(settings=settings)
    try:
        await _start(services)
    except BaseException:
        await stop_services(services)
        raise
    return services


async def _start(services: Services) -> None:
    from app.personas.catalog import PersonaCatalog
    from app.personas.loader import load_personas

    settings = services.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from app import data_lock

    if data_lock.needs_lock(settings):
        # before anything touches the data: a second server on it would run recovery on a
        # live server's replies (re-entrant: `memento serve` already holds it)
        try:
            services.data_lock = data_lock.acquire(settings.data_dir)
        except data_lock.DataDirBusy as busy:
            raise StartupError(f"cannot start: {busy}") from None
    files = await _step(
        f"loading personas from {settings.personas_dir}",
        lambda: asyncio.to_thread(load_personas, settings.personas_dir, settings.max_persona_bytes),
    )
    personas = services.personas = PersonaCatalog(files, settings.max_persona_bytes)

    from app.store.repo import Store

    store = await _step(
        "opening the store",
        lambda: asyncio.to_thread(
            Store,
            settings.resolved_database_url,
            lease_seconds=settings.reply_lease_seconds,
            history_cache_messages=settings.history_cache_messages,
        ),
    )
    services.store = store
    from app.service.store import AsyncStore

    astore = services.astore = AsyncStore(store)
    # only replies whose lease ran out: another replica's live replies keep theirs. The
    # embedded database under a data directory we hold is ours alone: whatever is pending
    # there is a dead process's, marked now rather than a lease later (kill -9, restart)
    alone = services.data_lock is not None and settings.database_url is None
    recovered = await astore.recover_pending(alone=alone)
    if recovered:
        log.info("marked %d abandoned pending reply(ies) as interrupted", recovered)
    services.local_user_id = (await astore.get_or_create_user()).id
    await asyncio.to_thread(services.personas.attach_store, store)

    from app.blas import load_blas

    services.blas = load_blas()
    from app.llm.factory import load_engine
    from app.llm.worker import MLXWorker

    worker = services.worker = MLXWorker(max_active=settings.max_batch)
    services.engine = await _step(
        f"loading the model ({settings.model or 'embedded SmolLM2-135M-Instruct'})",
        lambda: asyncio.to_thread(load_engine, settings, worker),
    )

    from memory.embedder_choice import make_embedder
    from memory.recall import HybridRecaller
    from memory.vector_index import VectorIndex

    embedder = services.embedder = make_embedder(settings.embedder, worker)

    async def open_index() -> VectorIndex:
        return VectorIndex.open(settings.data_dir, settings.chroma_url, embedder)

    services.index = index = await _step("opening the vector index", open_index)
    from app.recall_guard import GuardedRecaller

    # a stopped vector server costs a turn its recall, never the turn itself
    services.recaller = GuardedRecaller(
        HybridRecaller(index, max_cache_bytes=settings.recall_cache_bytes),
        timeout=settings.recall_timeout_seconds,
    )

    from app.service.chat import ChatService

    services.chat = ChatService(
        settings=settings,
        engine=services.engine,
        store=store,
        personas=services.personas,
        recaller=services.recaller,
    )
    from app.service.memory_admin import MemoryAdmin

    services.memory_admin = MemoryAdmin(astore, services.chat, personas, settings)
    from app.leases import LeaseKeeper

    services.leases = LeaseKeeper(astore)
    services.leases.start()
    from app.heap import HeapTrimmer

    services.heap = HeapTrimmer(settings.heap_trim_seconds)
    services.heap.start()
    e = services.engine
    log.info(
        "ready: model %s (%s, context %d tokens), store %s, vector %s",
        e.model_id,
        e.backend,
        e.context_window,
        store.backend,
        services.vector_backend(),
    )


async def stop_services(services: Services) -> None:
    """Tear down whatever was built, in reverse order; one failure does not stop the rest."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if services.heap is not None:
        steps.append(("heap trimming", services.heap.aclose))
    if services.leases is not None:
        steps.append(("reply leases", services.leases.aclose))
    if services.chat is not None:
        steps.append(("chat", services.chat.aclose))
    if services.engine is not None:
        steps.append(("engine", services.engine.aclose))
    if isinstance(services.index, Closeable):
        steps.append(("vector index", services.index.close))
    if (store := services.store) is not None:
        steps.append(("store", lambda: asyncio.to_thread(store.close)))
    if (worker := services.worker) is not None:
        steps.append(("MLX worker", lambda: asyncio.to_thread(worker.shutdown)))
    for name, fn in steps:
        try:
            await fn()
        except Exception:  # noqa: BLE001 - keep shutting the rest down
            log.exception("error while stopping the %s", name)
    if services.data_lock is not None:
        services.data_lock.release()  # last: the data is closed
        services.data_lock = None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from app.heap import limit_arenas

        limit_arenas()  # before the threads that would each make one (app/heap.py)
        services = await start_services(settings)
        app.state.services = services
        try:
            yield
        finally:
            app.state.services = None
            await stop_services(services)

    app = FastAPI(
        title="Memento",
        version=VERSION,
        description="A persistent-memory chatbot service on a local MLX model.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = None
    install_error_handlers(app)
    from app.api import ROUTERS

    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    from app.security.install import install_security

    # after the body limit: auth and per-user limits wrap it (auth -> limits -> body -> routes)
    install_security(app, settings)
    if (WEB_DIR / "index.html").is_file():
        # mounted last: every API route above wins over a static file of the same path
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
