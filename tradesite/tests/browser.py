"""Browser-test helpers shared by every browser test module: the real web server in a subprocess
(``web``), a trader who can log in through it, logging in, storing candles, publishing on the
channel layer. The fixtures ``web`` and ``trader`` are registered by the conftests that import
them (tradesite/tests/conftest.py, strategies/tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from markets.candles import upsert_candles
from markets.tests.database import database_url
from tradesite.devservices import free_port

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60_000
PASSWORD = "chart-password-1"


class WebServer:
    """``tradesite.web`` serving tradesite.asgi on 127.0.0.1:port; stop() and start() again at
    will."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = open(ROOT / "test-artifacts" / f"web-{port}.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "SECRET_KEY": settings.SECRET_KEY,
            "DJANGO_SETTINGS_MODULE": "tradesite.settings",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tradesite.web", "--host", "127.0.0.1", "--port",
             str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the web server exited with {self.proc.returncode}; see {self.log.name}"
                )
            try:
                urllib.request.urlopen(self.url + "/admin/login/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the web server did not answer within 30 s")

    def kill(self) -> None:
        """A crash: SIGKILL, no goodbye to the clients."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="module")
def web_server(redis_url, django_db_setup):
    """One server for a module's tests (starting one costs seconds): it keeps no state of its
    own between them (the rows are flushed after each test, each test logs in afresh)."""
    os.makedirs(ROOT / "test-artifacts", exist_ok=True)
    server = WebServer(free_port())
    server.start()
    yield server
    server.stop()
    server.log.close()


@pytest.fixture
def web(web_server, db):
    """The module's server, started again if the previous test left it down (killed)."""
    if web_server.proc is None or web_server.proc.poll() is not None:
        web_server.start()
    return web_server


def publish(group: str, message: dict) -> None:
    """group_send from a thread: Playwright's sync API owns this thread's event loop."""
    errors: list[BaseException] = []

    def run():
        try:
            async_to_sync(get_channel_layer().group_send)(group, message)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]


def store(symbol, start_ms: int, n: int, tf: str = "1m", step: int = MINUTE, base=100.0):
    rows = []
    for i in range(n):
        o = base + (i % 10) - 5
        c = o + (1 if i % 3 else -1)
        rows.append((start_ms + i * step, o, max(o, c) + 0.5, min(o, c) - 0.5, c, 10.0 + i % 5))
    upsert_candles(symbol.pk, tf, rows)


@pytest.fixture
def trader(make_trader):
    user = make_trader("carol")
    # The server process checks passwords with Django's default hashers (the tests' MD5 one is
    # not among them); few iterations keep it fast.
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "saltsaltsalt", iterations=1000)
    user.save(update_fields=["password"])
    return user


def log_in(page, web, path: str, username: str = "carol", password: str = PASSWORD) -> None:
    page.goto(web.url + path)
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(web.url + path + "*")


class SharedSite:
    """One web server, one trader and one logged-in browser context for a module's tests."""

    def __init__(self, web: WebServer, context, page, ids: dict) -> None:
        self.web, self.url, self.context, self.page, self.ids = web, web.url, context, page, ids

    def goto(self, path: str, ready: str):
        """Open ``path`` and wait for the selector ``ready`` and the network to settle."""
        self.page.goto(self.url + path)
        self.page.wait_for_selector(ready)
        self.page.wait_for_load_state("networkidle")
        return self.page


@pytest.fixture(scope="module")
def shared_site(django_db_setup, django_db_blocker, redis_url, browser):
    """Demo-like rows (tradesite.tests.site_data) committed to the test database, the web server
    over them and a 1280x800 browser context logged in as their trader. The tests using it
    carry no django_db mark (a transactional test would empty the tables after each test); the
    rows are flushed at the end of the module."""
    from django.core.management import call_command

    from tradesite.tests import site_data

    os.makedirs(ROOT / "test-artifacts", exist_ok=True)
    with django_db_blocker.unblock():
        user = site_data.trader("carol", PASSWORD)
        ids = site_data.populate(user, now_ms=int(time.time() * 1000))
    server = WebServer(free_port())
    server.start()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        log_in(page, server, "/")
        yield SharedSite(server, context, page, ids)
    finally:
        context.close()
        server.stop()
        server.log.close()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def shell_page(shared_site, browser_problems):
    """The shared logged-in page, its console errors and failed requests watched for this test
    (conftest fails the test on any)."""
    browser_problems.watch(shared_site.context)
    yield shared_site
    browser_problems.unwatch()
