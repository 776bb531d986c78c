"""Fixtures: recorded payloads and a small local HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

#: The venue payloads live once, beside the simulator that answers in their shapes.
PAYLOADS = Path(__file__).resolve().parents[3] / "simulator" / "payloads"


def load(name: str) -> Any:
    """The ``data`` of a recorded payload file in ``simulator/payloads/``."""
    return json.loads((PAYLOADS / f"{name}.json").read_text())["data"]


@pytest.fixture
def payload():
    return load


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    raw_query: str
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    text: str | None = None


class LocalServer:
    """HTTP on 127.0.0.1: ``route(method, path)`` functions return a ``Reply``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Any] = {}
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, parts.path,
                              urllib.parse.parse_qsl(parts.query, keep_blank_values=True),
                              parts.query, dict(self.headers.items()),
                              self.rfile.read(length) if length else b"")
                outer.requests.append(req)
                handler = outer.routes.get((req.method, req.path))
                reply = handler(req) if handler else Reply(404, {"error": {
                    "name": 404, "message": f"no route {req.method} {req.path}"}})
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.text.encode() if reply.text is not None else \
                    json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    ctype = "text/plain" if reply.text is not None else "application/json"
                    self.send_header("Content-Type", ctype)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    def route(self, method: str, path: str):
        def register(fn):
            self.routes[(method, path)] = fn
            return fn
        return register

    def hits(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]


@pytest.fixture
def server():
    srv = LocalServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
