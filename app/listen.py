"""The server's listening socket, bound by `memento serve` before the model loads: a port in
use is refused at once with what to do, not after seconds of loading as uvicorn's own bind
would (it binds only once the app has started)."""

from __future__ import annotations

import errno
import socket


class PortBusy(RuntimeError):
    pass


def bind(host: str, port: int) -> socket.socket:
    """A bound, inheritable-free socket on (host, port) for uvicorn to listen on."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # as uvicorn does: a restart may reuse a port left in TIME_WAIT, never one someone holds
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortBusy(
                f"port {port} on {host} is already in use (another Memento or another "
                "program); stop it or choose another port with --port / MEMENTO_PORT"
            ) from None
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock
