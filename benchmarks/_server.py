"""One `memento serve` subprocess for the benchmarks that measure the service over HTTP
(cross_session.py, ttft.py, throughput.py, load.py): a free loopback port, a data dir of its
own, auth required, the caller's MEMENTO_* settings left out (they would change what is
measured), /healthz awaited, SIGTERM to stop (graceful: memory observers finish), API keys for
its users, and what it logged at --log-level warning.

    with Server(data, env={"MEMENTO_MAX_CONCURRENT_PER_USER": "64"}) as server:
        headers = {"Authorization": f"Bearer {server.key('alice')}"}
        ...
    print(server.problems())

Kept light (no `app` import until `make_keys`): the benchmarks' unit tests import their modules.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str
) -> float:
    """Wait until GET url answers 200; seconds it took. Raises if `proc` exits first."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - t0
        time.sleep(0.25)
    raise RuntimeError(f"{what} was not ready at {url} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 90) -> None:
    """SIGTERM our own process, SIGKILL it if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Server:
    """`memento serve` on `data`, auth required; restartable (stop, then start again).

    embedder: MEMENTO_EMBEDDER. env: more settings for the server (and `memento keys`).
    code: the copy of the repo to run (default: this one; another is put ahead of the editable
    install on PYTHONPATH). scrub_env=False keeps the caller's MEMENTO_* settings.
    new_session: start the server in its own session (a Ctrl-C in the terminal reaches only the
    benchmark, which then stops the server with SIGTERM). timeout: seconds to become healthy;
    grace: seconds from SIGTERM to SIGKILL.
    """

    def __init__(
        self,
        data: Path,
        embedder: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        code: Path = ROOT,
        log: Path | None = None,
        scrub_env: bool = True,
        new_session: bool = False,
        timeout: float = 600.0,
        grace: float = 90.0,
    ) -> None:
        self.data, self.embedder, self.code = data, embedder, code.resolve()
        self.extra_env = dict(env or {})
        self.log = log or data / "server.log"
        self.scrub_env, self.new_session = scrub_env, new_session
        self.timeout, self.grace = timeout, grace
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self) -> list[str]:
        """The `memento` command of the code to run: the venv's `memento` script would import
        the tree the venv was installed from (its editable finder), whatever tree this
        benchmark runs in, so the code comes first on PYTHONPATH (env) and the command is the
        script's own two lines. Before, a benchmark run from another work tree measured the
        venv's tree while reporting the other's commit."""
        return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]

    def env(self) -> dict[str, str]:
        if self.scrub_env:  # MEMENTO_* of the caller's shell would change what is measured
            env = {k: v for k, v in os.environ.items() if not k.startswith("MEMENTO_")}
        else:
            env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            MEMENTO_DATA_DIR=str(self.data),
            MEMENTO_PERSONAS_DIR=str(self.code / "personas"),
            MEMENTO_AUTH="required",
        )
        # ahead of the editable install's finder, which maps `app` to the venv's own tree
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.code), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env.update(self.extra_env)
        if self.embedder:
            env["MEMENTO_EMBEDDER"] = self.embedder
        return env

    def start(self, timeout: float | None = None) -> float:
        """Start and wait for /healthz; seconds it took."""
        t0 = time.perf_counter()
        cmd = [*self.cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--log-level", "warning"],
                cwd=self.code,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        wait = self.timeout if timeout is None else timeout
        try:
            wait_http(f"{self.url}/healthz", self.proc, self.log, wait, "memento serve")
        except BaseException:
            self.stop()  # not left running when it never became healthy
            raise
        return time.perf_counter() - t0

    def stop(self) -> None:
        """SIGTERM (graceful: memory observers finish), SIGKILL if it hangs: only our process."""
        stop_process(self.proc, self.grace)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def key(self, user: str) -> str:
        """A fresh API key for `user` (created if new), as an operator makes one: `memento keys
        create`, whether the server runs or not."""
        out = subprocess.run(
            [*self.cli(), "keys", "create", "--user", user],
            cwd=self.code,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def make_keys(self, users: Iterable[str]) -> dict[str, str]:
        """An API key per user (created if new), written straight into the data dir's store:
        faster than `key` for many users; before `start`, as the server reads the store."""
        sys.path.insert(0, str(self.code))
        from app.store.repo import Store

        store = Store(f"sqlite:///{(self.data / 'memento.db').resolve()}")
        try:
            return {u: store.create_api_key(store.get_or_create_user(u).id)[1] for u in users}
        finally:
            store.close()

    def problems(self) -> list[str]:
        """What the server logged (it runs at --log-level warning: all of it is a problem)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(errors="replace").splitlines()
        # the start-up banner is printed whatever the log level
        return [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith("Memento on")]
