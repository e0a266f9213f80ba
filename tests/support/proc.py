"""A real `memento serve` subprocess on a free loopback port, to be killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
MEMENTO = Path(sys.executable).parent / "memento"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "MEMENTO_DATA_DIR": str(data_dir),
            "MEMENTO_PERSONAS_DIR": str(REPO / "personas"),
            "MEMENTO_AUTH": "off",
            "MEMENTO_DATABASE_URL": "",
            "MEMENTO_CHROMA_URL": "",
            **env,
        }
        for empty in ("MEMENTO_DATABASE_URL", "MEMENTO_CHROMA_URL"):
            if not self.env[empty]:
                del self.env[empty]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 600.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(MEMENTO),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our signals reach only this process
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not become healthy: {self.tail()}")
            time.sleep(0.25)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(60)

    def terminate(self, timeout: float = 120.0) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def run_memento(
    *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MEMENTO), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


INDEX_IDS = """
import json, sys
from pathlib import Path
from memory.types import SessionInfo
from memory.vector_index import VectorIndex
import asyncio
from types import SimpleNamespace
# only reads ids: no embedder runs, and the collection (made by the server) keeps its identity
reader = SimpleNamespace(name="ids-reader", dim=384)
index = VectorIndex.open(Path(sys.argv[1]), None, embedder=reader, check_embedder=False)
info = SessionInfo(id=sys.argv[2], user_id=sys.argv[3], persona_id="x")
print(json.dumps(sorted(asyncio.run(index.ids(info)))))
"""


def index_ids(data_dir: Path, session_id: str, user_id: str, env: dict[str, str]) -> list[int]:
    """The message ids the vector index holds for a session, read in a separate process (the
    embedded Chroma is not shared with the server or this test process)."""
    out = subprocess.run(
        [sys.executable, "-c", INDEX_IDS, str(data_dir), session_id, user_id],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def sqlite_integrity(db: Path) -> str:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return "; ".join(str(r[0]) for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()
