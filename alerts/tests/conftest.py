"""Fixtures: the trading fixtures of ``orders.tests`` (scripted strategy, funded paper
account, user-group listener), channels, and a local webhook receiver on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from alerts.models import Channel
from alerts.tests.fake_telegram import fake_telegram, telegram_settings  # noqa: F401 (fixtures)
from orders.tests.conftest import (  # noqa: F401  (fixtures)
    listen,
    make_config,
    paper,
    script_strategy,
    trader,
)


@pytest.fixture
def scheduled(monkeypatch):
    """Ids the events module asked a worker to send (no broker involved)."""
    ids: list[int] = []
    monkeypatch.setattr("alerts.events.schedule", ids.extend)
    return ids


@pytest.fixture
def owner(request):
    """The owner of the ``paper`` account (by name: importing fixtures shadows them)."""
    return request.getfixturevalue("paper").owner


@pytest.fixture
def in_app(owner):
    return Channel.objects.create(owner=owner, name="toasts", kind=Channel.Kind.IN_APP)


class Receiver:
    """A webhook receiver: answers ``fail_first`` requests with 500, then 200; keeps every
    request (headers, JSON body) and the idempotency keys it accepted."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, dict]] = []
        self.accepted: list[str] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), json.loads(body or b"{}")))
                    failing = len(receiver.requests) <= receiver.fail_first
                    key = self.headers.get("X-Idempotency-Key", "")
                    if not failing and key not in receiver.accepted:
                        receiver.accepted.append(key)
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def webhook(owner, receiver):
    return Channel.objects.create(
        owner=owner, name="hook", kind=Channel.Kind.WEBHOOK, target=receiver.url
    )
