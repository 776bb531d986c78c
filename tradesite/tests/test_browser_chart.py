"""The live chart and the markets overview in headless Chromium against the real web server.

The server (``python -m tradesite.web``, as the Procfile runs it: uvicorn) runs in a subprocess
on a free port against the test database (committed rows: ``transaction=True``) and the test
Redis, so the test can kill it and start it again on the same port, as a deploy or a crash
would. Bars and events are published on the channel layer as the
stream and the trader do.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from markets import wire
from markets.timeframes import floor_ms
from strategies.models import Signal, StrategyConfig
from tradesite.tests.browser import (  # noqa: F401 - re-exported: other modules import them here
    MINUTE,
    PASSWORD,
    ROOT,
    WebServer,
    log_in,
    publish,
    store,
    trader,
    web,
    web_server,
)
from tradesite.views import signal_payload

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def chart_bars(page) -> list[dict]:
    return page.evaluate("window.tradesiteChart.bars()")


# The test kills the server (SIGKILL): a request in flight at that moment is reset or gets an
# empty answer, and the page's reconnect attempts are refused until the server is back. Those
# network-level failures are the crash itself; HTTP errors and script errors still fail the test,
# and the test checks that the chart fetched everything it missed.
_THE_CRASH = r"net::ERR_(CONNECTION_(REFUSED|RESET|CLOSED)|EMPTY_RESPONSE)"


@pytest.mark.allow_browser_errors(r"WebSocket connection to .* failed: .*" + _THE_CRASH,
                                  r"request failed: .*" + _THE_CRASH,
                                  r"console error: Failed to load resource: " + _THE_CRASH)
def test_live_chart_draws_updates_marks_switches_and_survives_a_server_restart(
    web, page, screenshot, symbol, trader, make_account  # noqa: F811 - the imported fixtures
):
    now = int(time.time() * 1000)
    t0 = floor_ms(now, "1m") - 400 * MINUTE
    store(symbol, t0, 300)
    store(symbol, floor_ms(t0, "5m") - 100 * 5 * MINUTE, 100, tf="5m", step=5 * MINUTE)
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'")
    assert page.locator("#chart canvas").count() > 0
    bars = chart_bars(page)
    assert len(bars) == 300 and bars[-1]["t"] == t0 + 299 * MINUTE
    screenshot("first-paint")

    # A forming bar published on the channel layer moves the chart (how fast is `make bench`'s
    # chart fan-out figure; this test waits up to 5 s, since CI shares two cores between passes).
    forming = t0 + 300 * MINUTE
    group = wire.bars_group("sim", "KRW-BTC", "1m")
    publish(group, wire.bar_message(
        "sim", "KRW-BTC", "1m", {"t": forming, "o": 100, "h": 131, "l": 99, "c": 130, "v": 3},
        closed=False))
    page.wait_for_function(
        f"() => (() => {{ const b = window.tradesiteChart.bars().at(-1);"
        f" return b.t === {forming} && b.c === 130; }})()", timeout=5000)
    assert page.inner_text("#last-price") == "130"
    screenshot("forming-bar")

    # A signal of this user appears as a marker.
    config = StrategyConfig.objects.create(
        owner=trader, name="rsi", strategy="rsi", symbol=symbol, account=make_account(trader),
        is_active=True)
    signal = Signal.objects.create(
        config=config, symbol=symbol, timeframe="1m", action="enter_long", price=Decimal("96"),
        bar_time=dt.datetime.fromtimestamp((t0 + 290 * MINUTE) / 1000, tz=dt.UTC),
        reason={"rsi": 27.4})
    publish(wire.user_group(trader.pk),
            wire.private_message(wire.SIGNAL_CREATED, signal_payload(signal)))
    page.wait_for_function("() => window.tradesiteChart.markers().length === 1", timeout=5000)
    marker = page.evaluate("window.tradesiteChart.markers()[0]")
    assert marker["time"] == (t0 + 290 * MINUTE) // 1000
    assert marker["position"] == "belowBar"
    screenshot("signal-marker")

    # Switching timeframe redraws with that timeframe's candles, and back.
    page.click("#timeframes button[data-tf='5m']")
    page.wait_for_function(
        "() => window.tradesiteChart.timeframe() === '5m'"
        " && window.tradesiteChart.bars().length === 100"
        " && window.tradesiteChart.badge() === 'live'")
    assert "tf=5m" in page.url
    screenshot("five-minutes")
    page.click("#timeframes button[data-tf='1m']")
    page.wait_for_function(
        "() => window.tradesiteChart.timeframe() === '1m'"
        " && window.tradesiteChart.bars().length === 300"
        " && window.tradesiteChart.badge() === 'live'")
    page.wait_for_function("() => window.tradesiteChart.markers().length === 1")

    # The server crashes; the stream keeps storing closed candles meanwhile (and publishes
    # them to nobody). After the restart the chart reconnects and fetches them: no hole.
    web.kill()
    page.wait_for_function("() => window.tradesiteChart.badge() === 'reconnecting'", timeout=10_000)
    screenshot("reconnecting")
    store(symbol, t0 + 300 * MINUTE, 4)
    publish(group, wire.bar_message(
        "sim", "KRW-BTC", "1m", {"t": t0 + 303 * MINUTE, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1},
        closed=True))  # lost: nobody is subscribed
    # And the first fetch of what it missed fails (a connection reset, as a server that is
    # still starting or a stale pooled connection gives): the chart retries it, no hole stays.
    failed = []

    def reset_once(route):
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.abort("connectionreset")

    page.route("**/api/candles?*after=*", reset_once)
    web.start()
    page.wait_for_function(
        "() => window.tradesiteChart.badge() === 'live' && window.tradesiteChart.reconnects() >= 1"
        f" && window.tradesiteChart.bars().at(-1).t === {t0 + 303 * MINUTE}", timeout=20_000)
    assert len(failed) == 1 and page.evaluate("window.tradesiteChart.gapRetries()") >= 1
    page.wait_for_function("() => document.getElementById('error').hidden")
    times = [b["t"] for b in chart_bars(page)]
    assert times == [t0 + i * MINUTE for i in range(304)]
    # And it is live again.
    publish(group, wire.bar_message(
        "sim", "KRW-BTC", "1m", {"t": t0 + 304 * MINUTE, "o": 99, "h": 102, "l": 98, "c": 101,
                                 "v": 2}, closed=False))
    page.wait_for_function(
        f"() => window.tradesiteChart.bars().at(-1).t === {t0 + 304 * MINUTE}", timeout=5000)
    screenshot("after-restart")


def test_chart_is_usable_on_a_phone(web, page, screenshot, symbol, trader):  # noqa: F811
    store(symbol, floor_ms(int(time.time() * 1000), "1m") - 200 * MINUTE, 200)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    assert page.locator("#chart canvas").first.bounding_box()["height"] > 250
    page.check("#overlays input[data-indicator='rsi']")
    page.wait_for_function("() => window.tradesiteChart.indicators().includes('rsi')")
    screenshot("phone")


def test_markets_overview_shows_prices_and_moves_with_tickers(
    web, page, screenshot, symbol, trader  # noqa: F811 - the imported fixtures
):
    now = floor_ms(int(time.time() * 1000), "1h")
    store(symbol, now - 30 * 3_600_000, 30, tf="1h", step=3_600_000)
    store(symbol, floor_ms(int(time.time() * 1000), "1m") - 5 * MINUTE, 5)
    log_in(page, web, "/markets/")
    page.wait_for_function("() => window.tradesiteMarkets?.badge() === 'live'")
    row = page.locator("tr[data-key='sim:KRW-BTC']")
    assert row.locator(".last").inner_text() != "-"
    assert row.locator(".change").inner_text().endswith("%")
    screenshot("overview")
    publish(wire.MARKETS_GROUP, wire.ticker_message("sim", "KRW-BTC", 123.25,
                                                    int(time.time() * 1000)))
    page.wait_for_function(
        "() => window.tradesiteMarkets.price('sim:KRW-BTC') === 123.25", timeout=5000)
    assert row.locator(".last").inner_text() == "123.25"
    row.locator("a").click()
    page.wait_for_url(web.url + "/chart/sim/KRW-BTC/")
    screenshot("linked-chart")


def test_dragging_into_the_past_loads_older_candles_without_a_gap(
    web, page, screenshot, symbol, trader  # noqa: F811 - the imported fixtures
):
    t0 = floor_ms(int(time.time() * 1000), "1m") - 1500 * MINUTE
    store(symbol, t0, 1500)
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'")
    assert len(chart_bars(page)) == 1000
    box = page.locator("#chart").bounding_box()
    y = box["y"] + box["height"] / 2
    for _ in range(30):  # each drag to the right shows ~100 older candles
        page.mouse.move(box["x"] + 100, y)
        page.mouse.down()
        page.mouse.move(box["x"] + 700, y, steps=5)
        page.mouse.up()
        if len(chart_bars(page)) == 1500:
            break
    page.wait_for_function("() => window.tradesiteChart.bars().length === 1500", timeout=5000)
    assert [b["t"] for b in chart_bars(page)] == [t0 + i * MINUTE for i in range(1500)]
    screenshot("older")


def test_chart_shows_each_configs_position_and_the_accounts_net(
    web, page, symbol, trader  # noqa: F811 - the imported fixtures
):
    """Two configs on one account and symbol: each position's entry line names its config,
    and the account's net (their signed sum, what the venue holds) is shown above the chart."""
    from markets.models import Account
    from orders.models import Position

    store(symbol, floor_ms(int(time.time() * 1000), "1m") - 50 * MINUTE, 50)
    account = Account.objects.create(owner=trader, exchange=symbol.exchange, label="paper")
    opened = dt.datetime.now(dt.UTC)
    for name, side, quantity in (("rsi", "long", "0.005"), ("ensemble", "short", "0.002")):
        config = StrategyConfig.objects.create(
            owner=trader, name=name, strategy="bollinger", symbol=symbol, timeframe="1m",
            account=account)
        Position.objects.create(account=account, config=config, symbol=symbol, side=side,
                                quantity=Decimal(quantity), entry_price=Decimal("100"),
                                opened_at=opened)
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.lines().length >= 2")
    titles = {line["title"] for line in page.evaluate("window.tradesiteChart.lines()")}
    assert {"rsi long entry", "ensemble short entry"} <= titles
    net = page.locator("#net-position").inner_text()
    assert f"account {account.pk}: net long 0.003 (2 positions)" in net
