"""``make screenshots``: PNGs of every page of the shell at desktop (1280x800) and phone
(390x844) width, dark and light, into ``$SCREENSHOTS_DIR`` (var/screenshots/), on demo-like rows
this module creates (tradesite.tests.site_data). Not part of ``make test``: it runs only when
SCREENSHOTS_DIR is set. Each page also passes the browser-problems guard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.redis,
    pytest.mark.screenshots,
    pytest.mark.skipif(not os.environ.get("SCREENSHOTS_DIR"),
                       reason="screenshots only with `make screenshots` (SCREENSHOTS_DIR)"),
]

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def pages(ids: dict) -> list[tuple[str, str, str]]:
    """(name, path, what shows the page is ready: a selector or a JS condition)."""
    return [
        ("dashboard", "/", "#orders"),
        ("markets", "/markets/", "js:window.tradesiteMarkets?.badge() === 'live'"),
        ("chart", f"/chart/{ids['venue']}/{ids['symbol']}/",
         "js:window.tradesiteChart?.badge() === 'live'"),
        ("backtests", "/strategies/backtests/", "#backtests"),
        ("backtest-detail", f"/strategies/backtests/{ids['backtest']}/",
         "js:window.tradesiteBacktest?.markers().length > 0"),
        ("runs", "/strategies/optimizer/runs/", "#runs"),
        ("run-detail", f"/strategies/optimizer/runs/{ids['run']}/", "#trials"),
        ("screener", "/strategies/screener/", "#screener"),
        ("alerts", "/alerts/", "#rules"),
        ("telegram-link", "/alerts/telegram/link", ".telegram-link"),
    ]


@pytest.mark.django_db  # pytest-django creates the test database only when some test asks
def test_the_database_is_there():
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.filter(username="carol").count() == 0


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("size", list(SIZES))
def test_screenshot_every_page(shell_page, size, theme):
    out = Path(os.environ["SCREENSHOTS_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    page = shell_page.page
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    shell_page.goto("/", "#theme-toggle")
    page.evaluate("(name) => window.tradesite.setTheme(name)", theme)
    for name, path, ready in pages(shell_page.ids):
        page.goto(shell_page.url + path)
        if ready.startswith("js:"):
            page.wait_for_function(f"() => {ready[3:]}")
        else:
            page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.dataset.theme") == theme
        page.screenshot(path=str(out / f"{name}-{size}-{theme}.png"), full_page=True)
