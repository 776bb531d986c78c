"""The order ticket in headless Chromium against the real web server (one server and one
browser page for the module): on the chart for a spot paper account and on the dashboard for a
futures paper account it places an order, shows a gate's refusal in place and closes the
position; a live account's order waits for the trader's confirmation (against the simulator).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal
from unittest import mock

import pytest

from markets import wire
from markets.exchanges import get_adapter
from markets.models import Account, Balance, Exchange, Symbol
from markets.timeframes import floor_ms
from orders.models import Order, Position
from orders.tests.live_helpers import live_account
from simulator.server import SimConfig, start_in_thread
from strategies.models import StrategyConfig
from tradesite.devservices import free_port
from tradesite.tests.test_browser_chart import (  # noqa: F401 (trader is a fixture)
    MINUTE,
    ROOT,
    WebServer,
    log_in,
    publish,
    store,
    trader,
)
from tradesite.views import position_payload

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
# The simulator's demo keys (simulator/accounts.py), as orders/tests/test_live_execution.py.
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
RESULT = "#ticket-result"


@pytest.fixture(scope="module")
def web(django_db_setup, redis_url):
    """One web server for the module on the test database (``django_db_setup`` made it; each
    test commits its rows), live trading allowed: the live account's venue is the simulator."""
    os.makedirs(ROOT / "test-artifacts", exist_ok=True)
    server = WebServer(free_port())
    with mock.patch.dict(os.environ, {"TRADING_LIVE": "1"}):
        server.start()
    yield server
    server.stop()
    server.log.close()


@pytest.fixture(scope="module")
def shared_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def page(shared_page):
    return shared_page


def result(page, kind: str) -> str:
    """The ticket's answer once it is of ``kind`` (filled, placed, rejected, cancelled)."""
    page.wait_for_function(
        f"() => document.getElementById('order-ticket').dataset.result === '{kind}'"
        " && !window.tradesiteTicket.busy()", timeout=10_000)
    text = page.inner_text(RESULT)
    page.evaluate("delete document.getElementById('order-ticket').dataset.result")
    return text


def fill(page, amount: str, side: str = "buy", kind: str = "market", price: str = "") -> None:
    page.check(f"#ticket-form input[name=side][value={side}]")
    page.check(f"#ticket-form input[name=type][value={kind}]")
    page.fill("#ticket-amount", amount)
    if price:
        page.fill("#ticket-price", price)


def positions_listed(page, n: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('#ticket-positions li[data-position]').length === {n}")


def test_spot_paper_on_the_chart_places_is_refused_and_closes(web, page, screenshot, symbol,
                                                               trader, make_account):  # noqa: F811
    start = floor_ms(int(time.time() * 1000), "1m") - 50 * MINUTE
    store(symbol, start, 50)  # closes near 100
    account = make_account(trader, label="spot paper")
    Balance.objects.create(account=account, asset="KRW", free=Decimal("1000000"))
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'"
                           " && window.tradesiteTicket !== undefined")
    rule = page.inner_text("#ticket-rule")
    assert "by BTC quantity or by the KRW amount to spend" in rule
    assert "minimum order 5,000 KRW" in rule

    # Refused by the minimum-order gate: its words, in place; nothing held.
    fill(page, "1")
    page.click("#ticket-submit")
    assert "below the venue minimum 5000 KRW" in result(page, "rejected")
    assert Order.objects.get(account=account).status == "rejected"

    # Placed and filled; the position shows in the ticket and, live, on the chart.
    fill(page, "100")
    page.click("#ticket-submit")
    assert result(page, "filled").startswith("Order filled: bought 100 BTC at ")
    positions_listed(page, 1)
    page.wait_for_function(
        "() => window.tradesiteChart.lines().some((l) => l.title === 'manual long entry')")
    # A market buy by the KRW to spend, on the same manual position.
    page.select_option("#ticket-size-by", "quote_amount")
    assert page.inner_text("#ticket-amount-label") == "Amount (KRW)"
    page.fill("#ticket-amount", "10000")
    page.click("#ticket-submit")
    assert result(page, "filled").startswith("Order filled: bought ")
    held = Position.objects.get(account=account, closed_at=None).quantity
    assert held > 100
    screenshot("spot-filled")

    page.click("#ticket-positions li[data-position] .ticket-close")
    assert result(page, "filled").startswith(f"Close filled: sold {held.normalize():f} BTC")
    positions_listed(page, 0)
    page.wait_for_function("() => window.tradesiteChart.lines().length === 0")
    assert not Position.objects.filter(account=account, closed_at=None).exists()
    assert Order.objects.get(account=account, reason="manual_close").reduce_only

    # The chart's socket moves the ticket too: a position opened elsewhere (a config, another
    # tab) is listed with its close button, and the estimated value follows the price.
    elsewhere = Position.objects.create(account=account, symbol=symbol, side="long",
                                        quantity=Decimal("3"), entry_price=Decimal("100"),
                                        opened_at=dt.datetime.now(dt.UTC))
    publish(wire.user_group(trader.pk),
            wire.private_message(wire.POSITION_UPDATED, position_payload(elsewhere)))
    positions_listed(page, 1)
    publish(wire.bars_group("sim", "KRW-BTC", "1m"), wire.bar_message(
        "sim", "KRW-BTC", "1m", {"t": start + 50 * MINUTE, "o": 100, "h": 131, "l": 99, "c": 130,
                                 "v": 1}, closed=False))
    page.select_option("#ticket-size-by", "quantity")
    page.fill("#ticket-amount", "2")
    page.wait_for_function("() => document.getElementById('ticket-estimate').textContent"
                           " === 'estimated value 260 KRW at the last price 130'")


def test_futures_paper_on_the_dashboard_places_is_refused_and_closes(web, page, screenshot,
                                                                     symbol, trader,  # noqa: F811
                                                                     make_account):
    venue = Exchange.objects.create(slug="sim-futures", name="Binance USDⓈ-M futures protocol",
                                    adapter="binance_futures", rest_url="http://127.0.0.1:1",
                                    ws_url="ws://127.0.0.1:1")
    perpetual = Symbol.objects.create(
        exchange=venue, code="BTCUSDT", base="BTC", quote="USDT", market_type="perpetual",
        tick_size=Decimal("0.1"), step_size=Decimal("0.001"), min_notional=Decimal("5"),
        max_leverage=20)
    store(perpetual, floor_ms(int(time.time() * 1000), "1m") - 50 * MINUTE, 50)
    make_account(trader, label="spot paper")  # the account picker has a choice
    futures = Account.objects.create(owner=trader, exchange=venue, label="futures paper")
    Balance.objects.create(account=futures, asset="USDT", free=Decimal("10000"))
    config = StrategyConfig.objects.create(
        owner=trader, name="bollinger 10x", strategy="bollinger", symbol=perpetual,
        timeframe="1m", account=futures, leverage=10, is_active=False)
    Position.objects.create(account=futures, config=config, symbol=perpetual, side="short",
                            quantity=Decimal("2"), entry_price=Decimal("100"), leverage=10,
                            margin=Decimal("20"), opened_at=dt.datetime.now(dt.UTC))
    log_in(page, web, "/")
    page.wait_for_function("() => window.tradesiteTicket !== undefined")
    page.select_option("#ticket-account", str(futures.pk))
    assert page.eval_on_selector_all("#ticket-symbol option", "os => os.map(o => o.value)") == [
        "BTCUSDT"]
    assert "size by quantity in contracts of BTC" in page.inner_text("#ticket-rule")
    # A perpetual is never sized by the USDT to spend.
    assert page.is_disabled("#ticket-size-by option[value=quote_amount]")
    positions_listed(page, 1)
    assert "bollinger 10x: short 10x 2" in page.inner_text("#ticket-positions")

    # One net position per symbol: a long against the config's short is refused, in words.
    fill(page, "1", side="buy")
    page.click("#ticket-submit")
    refused = result(page, "rejected")
    assert "a long entry on sim-futures:BTCUSDT is refused: config bollinger 10x" in refused
    assert "close that position first or use another account" in refused

    fill(page, "1", side="sell")
    page.click("#ticket-submit")
    assert result(page, "filled").startswith("Order filled: sold 1 BTC at ")
    positions_listed(page, 2)
    # The dashboard's tables show the new position and order.
    page.wait_for_function(
        "() => document.querySelector('#orders').innerText.includes('filled')"
        " && document.querySelector('#positions').innerText.includes('manual')")
    screenshot("futures-filled")

    manual = Position.objects.get(account=futures, config=None, closed_at=None)
    page.click(f"#ticket-positions li[data-position='{manual.pk}'] .ticket-close")
    assert result(page, "filled").startswith("Close filled: bought 1 BTC at ")
    positions_listed(page, 1)
    page.wait_for_function(
        "() => !document.querySelector('#positions').innerText.includes('manual')"
        " && document.querySelector('#orders').innerText.includes('manual_close')")
    assert Position.objects.get(pk=manual.pk).close_reason == "manual_close"
    assert Position.objects.get(config=config).closed_at is None  # the config's is untouched


@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=9, history_days=0.1, venues=("binance",)))
    yield handle
    handle.stop()


def test_a_live_order_is_sent_only_after_the_trader_confirms(web, page, screenshot, simulator,
                                                             trader):  # noqa: F811
    account, symbol = live_account(
        trader, "binance_spot", simulator.binance_url, "BTCUSDT", "BTC", "USDT", KEY, SECRET,
        slug="simbinance", name="Sim Binance", label="live binance", quote_asset="USDT",
        tick_size=Decimal("0.01"), step_size=Decimal("0.00001"), min_notional=Decimal("5"))
    adapter = get_adapter("binance_spot", rest_url=simulator.binance_url)
    now = int(time.time() * 1000)
    price = adapter.fetch_candles("BTCUSDT", "1m", now - 600_000, now + 60_000)[-1].close
    adapter.close()
    store(symbol, floor_ms(now, "1m") - 20 * MINUTE, 20, base=price)
    limit = f"{Decimal(repr(price)) / 2:.2f}"
    log_in(page, web, "/chart/simbinance/BTCUSDT/")
    page.wait_for_function("() => window.tradesiteTicket !== undefined")
    assert page.inner_text("#ticket-submit") == "Buy BTC (live)"

    fill(page, "0.001", kind="limit", price=limit)
    page.click("#ticket-submit")
    page.wait_for_selector("#ticket-confirm[open]")
    summary = page.inner_text("#ticket-summary")
    for words in ("buy (limit at", "0.001 BTC", "simbinance:BTCUSDT", "live binance (live",
                  "Estimated value"):
        assert words in summary, summary
    screenshot("live-confirmation")
    page.click("#ticket-confirm-cancel")
    assert result(page, "cancelled") == "Not sent: you cancelled the confirmation."
    assert page.evaluate("window.tradesiteTicket.sent()") == 0
    assert not Order.objects.filter(account=account).exists()

    page.click("#ticket-submit")
    page.wait_for_selector("#ticket-confirm[open]")
    page.click("#ticket-confirm-send")
    placed = result(page, "placed")
    assert placed.startswith("Order placed: buy 0.001 BTC limit at ")
    assert "open at the venue" in placed
    order = Order.objects.get(account=account)
    assert order.status == "open" and order.exchange_order_id
    assert page.evaluate("window.tradesiteTicket.sent()") == 1

    # Closing a live position asks first too; cancelled, nothing is sent.
    held = Position.objects.create(account=account, symbol=symbol, side="long",
                                   quantity=Decimal("0.002"), entry_price=Decimal(repr(price)),
                                   opened_at=dt.datetime.now(dt.UTC))
    page.evaluate("window.tradesiteTicket.refreshPositions()")
    positions_listed(page, 1)
    page.click(f"#ticket-positions li[data-position='{held.pk}'] .ticket-close")
    page.wait_for_selector("#ticket-confirm[open]")
    summary = page.inner_text("#ticket-summary")
    assert "manual long 0.002 BTC" in summary and "reduce-only market sell" in summary
    page.keyboard.press("Escape")
    assert result(page, "cancelled") == "Not sent: you cancelled the confirmation."
    assert page.evaluate("window.tradesiteTicket.sent()") == 1
    assert Order.objects.filter(account=account).count() == 1
    assert Position.objects.get(pk=held.pk).closed_at is None
