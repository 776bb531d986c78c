"""Every page of the shell in headless Chromium, on one server and one logged-in browser context
(``shared_site``: demo-like rows computed by the app's own services). Each test fails on any
console error or failed request of its pages (conftest's browser-problems guard)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

pytestmark = [pytest.mark.browser, pytest.mark.redis]

#: (nav label, the page's h1) in the order of the navigation bar.
PAGES = [
    ("Dashboard", "Trading dashboard"),
    ("Markets", "Markets"),
    ("Backtests", "Backtests"),
    ("Optimizer runs", "Optimizer runs"),
    ("Screener", "Screener"),
    ("Alerts", "Alerts"),
]


def current_nav(page) -> list[str]:
    return page.locator("#site-nav a[aria-current=page]").all_inner_texts()


@pytest.mark.django_db
def test_each_page_marks_its_own_navigation_entry(admin_client):
    """Server side, no browser: the shell names the page the user is on. (Also the module's
    one django_db test: pytest-django creates the test database only when some test asks.)"""
    for path, label in [("/", "Dashboard"), ("/markets/", "Markets"),
                        ("/strategies/backtests/", "Backtests"),
                        ("/strategies/optimizer/runs/", "Optimizer runs"),
                        ("/strategies/screener/", "Screener"), ("/alerts/", "Alerts"),
                        ("/alerts/rules/new", "Alerts"),
                        ("/alerts/telegram/link", "Alerts")]:
        html = admin_client.get(path).content.decode()
        marked = re.findall(r'<a href="[^"]*" class="current" aria-current="page">([^<]*)</a>',
                            html)
        assert marked == [label], (path, marked)


def test_dashboard_shows_the_accounts_positions_signals_and_orders(shell_page):
    page = shell_page.goto("/", "#accounts")
    assert page.inner_text("main h1") == "Trading dashboard"
    assert current_nav(page) == ["Dashboard"]
    assert "carol" in page.inner_text("header.topbar .who")
    assert page.inner_text("header.topbar .tz") == settings.TIME_ZONE
    assert "paper" in page.inner_text("#accounts")
    assert "KRW-BTC" in page.inner_text("#positions")
    assert "enter_long" in page.inner_text("#signals")
    assert "filled" in page.inner_text("#orders")
    # Its socket (the user's events on /ws/markets/) drives the connection indicator.
    page.wait_for_function("() => window.tradesite.connection() === 'live'")
    assert page.inner_text("#connection") == "live"


def test_markets_lists_the_venue_and_goes_live(shell_page):
    page = shell_page.goto("/markets/", "#markets")
    page.wait_for_function("() => window.tradesiteMarkets?.badge() === 'live'")
    assert current_nav(page) == ["Markets"]
    assert page.locator("tr[data-key='sim:KRW-BTC'] .last").inner_text() != "-"
    # The page's socket drives the shell's indicator.
    page.wait_for_function("() => window.tradesite.connection() === 'live'")
    assert page.inner_text("#connection") == "live"


def test_chart_draws_the_candles_and_marks_markets_current(shell_page):
    page = shell_page.goto("/chart/sim/KRW-BTC/", "#chart canvas")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'")
    assert len(page.evaluate("window.tradesiteChart.bars()")) > 100
    assert current_nav(page) == ["Markets"]
    assert page.inner_text("#connection") == "live"


def test_backtests_list_and_detail(shell_page):
    run = shell_page.ids["backtest"]
    page = shell_page.goto("/strategies/backtests/", "#backtest-form")
    assert page.inner_text("main h1") == "Backtests"
    assert current_nav(page) == ["Backtests"]
    page.click(f"#backtests a:text-is('#{run}')")
    page.wait_for_selector("#stats")
    page.wait_for_function("() => window.tradesiteBacktest?.markers().length > 0")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("main h1") == f"Backtest {run}"
    assert page.inner_text("#status") == "Done"
    assert current_nav(page) == ["Backtests"]


def test_optimizer_runs_list_and_detail(shell_page):
    run = shell_page.ids["run"]
    page = shell_page.goto("/strategies/optimizer/runs/", "#runs")
    assert current_nav(page) == ["Optimizer runs"]
    page.click(f"#runs a:text-is('#{run}')")
    page.wait_for_selector("#trials")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("main h1") == f"Optimizer run {run}"
    assert page.locator("#trials tbody tr").count() >= 1
    assert current_nav(page) == ["Optimizer runs"]


def test_screener_ranks_the_venues_symbols(shell_page):
    page = shell_page.goto("/strategies/screener/", "#screener")
    assert current_nav(page) == ["Screener"]
    assert page.locator("#screener tbody tr").count() == 3


def test_the_navigation_bar_reaches_every_page(shell_page):
    page = shell_page.goto("/", "#site-nav")
    for label, heading in PAGES:
        page.click(f"#site-nav a:text-is('{label}')")
        page.wait_for_function(
            "(h) => document.querySelector('main h1')?.textContent.trim() === h", arg=heading)
        page.wait_for_load_state("networkidle")
        assert current_nav(page) == [label], label
    page.click("#site-nav a:text-is('Admin')")
    page.wait_for_selector("#content h1")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#content h1") == "Trading administration"


def test_the_theme_toggle_is_remembered_and_the_menu_collapses_on_a_phone(shell_page):
    page = shell_page.goto("/", "#theme-toggle")
    before = page.evaluate("document.documentElement.dataset.theme")
    assert before in ("dark", "light")
    page.click("#theme-toggle")
    after = "light" if before == "dark" else "dark"
    assert page.evaluate("document.documentElement.dataset.theme") == after
    page.reload()
    page.wait_for_selector("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == after
    page.click("#theme-toggle")  # back, for the other tests' screenshots

    page.set_viewport_size({"width": 390, "height": 844})
    try:
        assert page.locator("#site-nav").is_hidden()
        page.click("#nav-toggle")
        assert page.locator("#site-nav a:text-is('Screener')").is_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the dashboard scrolls sideways on a phone ({width} px)"
        # Wide tables scroll inside themselves instead.
        box = page.locator("#positions").bounding_box()
        assert box["width"] <= 390
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})


def test_the_guard_sees_a_missing_page_and_a_console_error(shell_page, browser_problems):
    """The check every browser test ends with does record what it should."""
    page = shell_page.page
    page.goto(shell_page.url + "/no-such-page/")
    page.evaluate("console.error('provoked on purpose')")
    found = browser_problems.take()
    assert any(re.match(r"HTTP 404: GET .*/no-such-page/", f) for f in found), found
    assert any("provoked on purpose" in f for f in found), found


def toast_reaches(page, user_id: int, alert_id: int) -> str:
    """Push one in-app alert to the user's group (as the outbox worker does) and wait for its
    toast on the open page."""
    import threading

    from alerts import delivery

    payload = {"id": alert_id, "title": f"Price alert {alert_id}", "body": "KRW-BTC crossed",
               "kind": "price_cross", "created_at": None, "level": "info"}
    thread = threading.Thread(target=delivery.tell_in_app, args=(user_id, payload))
    thread.start()
    thread.join(10)
    toast = page.locator(f"#toasts [data-alert-id='{alert_id}']")
    toast.wait_for(timeout=10_000)
    return toast.inner_text()


@pytest.mark.parametrize("path, ready", [
    ("/", "#accounts"), ("/markets/", "#markets"), ("/strategies/backtests/", "#backtests"),
    ("/strategies/screener/", "#screener"), ("/alerts/", "#rules"),
])
def test_an_alert_is_a_toast_on_every_page(shell_page, path, ready):
    """The dashboard, markets and alerts pages show toasts from their own socket; pages without
    one (backtests, screener...) from the shell's (static/js/user-socket.js). Either drives the
    connection indicator."""
    page = shell_page.goto(path, ready)
    page.wait_for_function("() => window.tradesite.connection() === 'live'")
    alert_id = 900_000 + len(path)
    assert "Price alert" in toast_reaches(page, shell_page.ids["user"], alert_id)
