"""A real OpenAI-compatible model server that misbehaves on cue, for fault tests: a stdlib
HTTP server on a loopback port in a daemon thread, speaking chunked SSE like vLLM or
mlx_lm.server. What each reply does is set by `mode`:

- "ok": the tokens, a finish reason, usage, [DONE]
- "error": some tokens, then an in-band `{"error": {...}}` event (what a server sends when it
  fails after the 200 went out), then [DONE]
- "drop": some tokens, then the connection is cut mid-body (a killed worker)
- "eof": some tokens, then a clean end of the body with no finish reason and no [DONE]
- "hold": some tokens, then it waits until `release()` before finishing like "ok"
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKENS = ["Once", " upon", " a", " time", ",", " a", " lighthouse", " keeper"]
BEFORE_FAULT = 3  # tokens sent before the fault


class FakeModelServer:
    def __init__(self, mode: str = "ok", tokens: list[str] | None = None) -> None:
        self.mode = mode
        self.tokens = tokens or TOKENS
        self.requests = 0
        self.streaming = threading.Event()  # set once a reply has sent its first tokens
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json({"object": "list", "data": [{"id": "fake-model"}]})
                else:
                    self._json({"error": {"message": "not found"}}, 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                json.loads(self.rfile.read(length) or b"{}")
                owner.requests += 1
                owner._reply(self)

            def _json(self, body: Any, status: int = 200) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # a client closing an idle keep-alive connection is not news
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def release(self) -> None:
        self._release.set()

    def _reply(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()

        def chunk(data: bytes) -> None:
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()

        def event(body: Any) -> None:
            chunk(f"data: {json.dumps(body)}\n\n".encode())

        def token(text: str) -> None:
            event({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})

        mode = self.mode
        for text in self.tokens[:BEFORE_FAULT]:
            token(text)
        self.streaming.set()
        if mode == "error":
            event({"error": {"message": "CUDA out of memory", "type": "server_error"}})
            chunk(b"data: [DONE]\n\n")
            chunk(b"")
            return
        if mode == "drop":
            # cut mid-body: no terminating chunk, the socket just goes away
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        if mode == "eof":
            chunk(b"")  # a well-formed end of the body, but the reply never finished
            return
        if mode == "hold":
            self._release.wait(600)
        for text in self.tokens[BEFORE_FAULT:]:
            token(text)
        event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        usage = {"prompt_tokens": 10, "completion_tokens": len(self.tokens)}
        event({"choices": [], "usage": usage})
        chunk(b"data: [DONE]\n\n")
        chunk(b"")

    def __enter__(self) -> FakeModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
