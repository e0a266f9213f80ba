"""Where `memento chat` finds its server: the one that holds the data directory when it runs
(two processes must never share the embedded data), else the app served in-process by uvicorn
on a loopback port in a daemon thread, its start-up shown as a progress bar.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.cli.chat_client import ApiError
from app.config import Settings


class _StepProgress(logging.Handler):
    """Turns the app's start-up log lines ("loading the model...", "...: done") into a bar."""

    def __init__(self, progress: Progress, task: Any) -> None:
        super().__init__(logging.INFO)
        self.progress, self.task = progress, task

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.endswith("..."):
            self.progress.update(self.task, description=text[:-3])
        elif ": done" in text:
            total = self.progress.tasks[0].total or 1
            done = self.progress.tasks[0].completed + 1
            self.progress.update(self.task, completed=done, total=max(total, done + 1))


class LocalServer:
    """The app served by uvicorn on 127.0.0.1:<free port> in a daemon thread of this process."""

    def __init__(self, settings: Settings | None = None) -> None:
        import uvicorn

        from app.main import create_app

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, log_level="warning", log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="memento-server", daemon=True)
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as e:  # noqa: BLE001 - reported by start()
            self.error = e

    def start(self, console: Console | None = None) -> str:
        """Serve, showing the start-up steps as a progress bar on `console`; the base URL."""
        log = logging.getLogger("memento")
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=console is None,
        ) as progress:
            task = progress.add_task("starting", total=4)  # personas, store, model, index
            handler = _StepProgress(progress, task)
            old_level = log.level
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
            try:
                self.thread.start()
                while not self.server.started and self.thread.is_alive():
                    self.thread.join(0.1)
            finally:
                log.removeHandler(handler)
                log.setLevel(old_level)
                log.propagate = True
        if not self.server.started:
            raise ApiError(0, f"the server did not start: {self.error or 'see the log above'}")
        services = self.app.state.services
        if services is not None and services.data_lock is not None:
            # a `memento chat` or `memento serve` started meanwhile finds this one
            services.data_lock.describe_self(url=self.url)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def running_server(settings: Settings) -> str | None:
    """The URL of the server that holds this data directory, if one does. ApiError if one
    does but has not said where it listens (it is starting, or an older Memento): two
    processes must never share the embedded data."""
    from app import data_lock

    if not data_lock.needs_lock(settings):
        return None
    holder = data_lock.holder(settings.data_dir)
    if holder is None:
        return None
    if not holder.get("url"):
        raise ApiError(
            0,
            f"the data directory {settings.data_dir} is in use by "
            f"{data_lock.describe(holder)}; wait for it to start and run `memento chat` "
            "again, or pass its address with --url",
        )
    return str(holder["url"])
