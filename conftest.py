"""Fixtures shared by every app's tests.

Real components: Redis comes from ``make test`` (``tradesite.devservices with-redis``), which sets
REDIS_URL before pytest starts; settings read it at import, so it cannot be started from here.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail(
            "this test needs a real Redis: run `make test` (it starts one) or set REDIS_URL",
            pytrace=False,
        )
    return url


@pytest.fixture
def clean_redis(redis_url):
    """A Redis without this app's keys, before and after the test."""
    from django.conf import settings

    from markets import heartbeat

    def wipe():
        conn = heartbeat.client()
        keys = list(conn.scan_iter(match=settings.REDIS_KEY_PREFIX + "*", count=500))
        if keys:
            conn.delete(*keys)

    wipe()
    yield heartbeat.client()
    wipe()


@pytest.fixture
def exchange(db):
    from markets.models import Exchange

    return Exchange.objects.create(
        slug="sim",
        name="Simulator",
        adapter="upbit",
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
    )


@pytest.fixture
def symbol(exchange):
    from markets.models import Symbol

    return Symbol.objects.create(
        exchange=exchange,
        code="KRW-BTC",
        base="BTC",
        quote="KRW",
        min_notional=Decimal("5000"),
        max_leverage=10,
    )


@pytest.fixture
def make_trader(db):
    """A staff user with the Traders group's permissions (not a superuser)."""
    from django.contrib.auth import get_user_model

    from tradesite.demo import traders_group

    def make(username: str):
        user = get_user_model().objects.create_user(
            username, password="pw-" + username, is_staff=True
        )
        user.groups.add(traders_group())
        return user

    return make


@pytest.fixture
def make_account(exchange):
    from markets.models import Account

    def make(owner, label="paper", **kwargs):
        return Account.objects.create(owner=owner, exchange=exchange, label=label, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _fresh_symbol_rules():
    """Adapters share a venue's symbol list for minutes (``markets.exchanges.base``); a test
    never sees the list an earlier test's venue served on a reused port."""
    from markets.exchanges.base import forget_symbol_rules

    forget_symbol_rules()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel-layer object. A consumer a test leaves receiving (its
    socket closed by the server and never disconnected) holds the layer's receive state: a
    count and a lock bound to that test's event loop. Whenever the garbage collector later
    finished the abandoned task, it released or counted down the next test's state, and that
    test's sockets failed at random ("lock bound to a different event loop")."""
    from channels.layers import channel_layers

    channel_layers.backends.pop("default", None)
    yield
    channel_layers.backends.pop("default", None)


@pytest.fixture(autouse=True)
def _fast_password_hashing(request):
    """PBKDF2's 1M iterations cost ~0.6 s per user on this machine; tests don't need them.
    (Skipped when pytest-django is off, e.g. ``-p no:django`` for the pure layers.)"""
    if not request.config.pluginmanager.hasplugin("django"):
        return
    settings = request.getfixturevalue("settings")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests' webhook receivers listen on 127.0.0.1 (the SSRF tests turn this off again);
    # mail goes to Django's in-memory outbox.
    settings.ALERTS_ALLOW_PRIVATE_WEBHOOKS = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


# Workers and streams a test starts as subprocesses reach its 127.0.0.1 receivers too.
os.environ.setdefault("ALERTS_ALLOW_PRIVATE_WEBHOOKS", "true")


# --- Browser tests: Playwright driving Debian's Chromium (Playwright cannot download browsers) --

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "test-artifacts")
# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run
# there unless told it is safe (it is: the test thread is not serving requests).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run with CI=true, but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture
def csp_violations(page) -> list[str]:
    """Content-Security-Policy violations the page reports (Chromium logs each as a console
    error; the init script also reports ``securitypolicyviolation`` events, which carry the
    directive and the blocked source)."""
    found: list[str] = []
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => console.error("
        "`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at "
        "${e.sourceFile}:${e.lineNumber}`));"
    )

    def on_console(message) -> None:
        text = message.text
        if message.type == "error" and (
            text.startswith("CSP violation") or "Content Security Policy" in text
        ):
            found.append(text)

    page.on("console", on_console)
    return found


@pytest.fixture
def browser_problems(request):
    """Console errors, uncaught exceptions, failed requests and HTTP answers >= 400 of the
    test's pages (tradesite.tests.browser_errors). ``page`` is watched by itself; a fixture
    that shares one browser context across tests watches it with ``browser_problems.watch``.
    A test expecting one calls ``browser_problems.allow(pattern)`` or carries
    ``@pytest.mark.allow_browser_errors(pattern, ...)``."""
    from tradesite.tests.browser_errors import BrowserProblems

    problems = BrowserProblems()
    for marker in request.node.iter_markers("allow_browser_errors"):
        problems.allow(*marker.args)
    return problems


_PROBLEMS = pytest.StashKey()
_FOUND = pytest.StashKey()


@pytest.fixture(autouse=True)
def _browser_pages_keep_the_csp_and_report_no_errors(request):
    """Every browser test fails on a Content-Security-Policy violation of its pages, and on any
    console error or failed request (what the page logged while the test body ran: the
    fixtures' teardown, e.g. stopping the server under an open page, does not count)."""
    if request.node.get_closest_marker("browser") is None:
        yield
        return
    problems = request.getfixturevalue("browser_problems")
    request.node.stash[_PROBLEMS] = problems
    found = []
    if "page" in request.fixturenames:
        problems.watch(request.getfixturevalue("context"))
        found = request.getfixturevalue("csp_violations")
    yield
    problems.unwatch()
    assert found == [], "the page broke the Content-Security-Policy:\n" + "\n".join(found)
    errors = request.node.stash.get(_FOUND, [])
    assert errors == [], (
        "the page logged errors or had failed requests (expected ones: "
        "@pytest.mark.allow_browser_errors):\n" + "\n".join(errors)
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """The browser problems recorded while the test body ran, taken before any teardown."""
    try:
        return (yield)
    finally:
        problems = item.stash.get(_PROBLEMS, None)
        if problems is not None:
            item.stash[_FOUND] = problems.take()
            problems.unwatch()


@pytest.fixture
def screenshot(page, request):
    """Save a screenshot under test-artifacts/ (CI keeps them)."""

    def take(label: str = "final") -> str:
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, f"{request.node.name}-{label}.png")
        page.screenshot(path=path, full_page=True)
        return path

    return take


#: The fixtures through which a test reaches the suite's database (``live_server`` implies one).
DATABASE_FIXTURES = frozenset({
    "db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback",
    "live_server",
})


def on_postgresql() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith("postgres")


def runs_on_postgresql(item) -> bool:
    """Whether the PostgreSQL pass runs ``item``: a test marked ``postgres``, or one that uses
    the suite's database and is not a browser test. Reason: that pass exists for what can differ
    by backend (SQL, constraints, locking, transactions, bulk upserts, the candle backends); a
    test without the database, or a browser test (its pages' queries run on PostgreSQL in the
    views' own tests), would only repeat the SQLite pass. ``PG_FULL_SUITE=1`` runs everything."""
    if item.get_closest_marker("postgres") is not None:
        return True
    if item.get_closest_marker("browser") is not None:
        return False
    return item.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES.intersection(item.fixturenames))


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL, only the tests ``runs_on_postgresql`` keeps (the rest are deselected).
    Browser tests run last: Playwright's sync API leaves an event loop running in the main
    thread for the rest of the session, and any ``asyncio.run()`` after it would fail."""
    if on_postgresql() and os.environ.get("PG_FULL_SUITE") != "1":
        kept = [item for item in items if runs_on_postgresql(item)]
        if len(kept) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if not runs_on_postgresql(i)])
            items[:] = kept
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
