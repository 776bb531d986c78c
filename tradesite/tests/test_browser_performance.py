"""The dashboard's profit and loss in a real browser (uvicorn + Debian's Chromium): the equity
curve draws on a canvas and takes a live snapshot, the returns tables and the trade history
show the stored trades, and the range buttons fetch their range."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from markets import wire
from orders.tests.conftest import fund
from orders.tests.performance_data import closed_trades, snapshots
from strategies.models import StrategyConfig
from tradesite.tests.test_browser_chart import log_in, publish, trader, web  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_dashboard_shows_equity_returns_and_trades(web, page, screenshot, symbol,  # noqa: F811
                                                    trader, make_account):  # noqa: F811
    account = make_account(trader, label="carol-paper")
    fund(account, "KRW", "1000000")
    config = StrategyConfig.objects.create(
        owner=trader, name="carol-rsi", strategy="rsi", params={}, symbol=symbol,
        timeframe="1m", account=account,
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    half = dt.timedelta(minutes=30)  # off the hour: the 1D range holds exactly 24 of them
    snapshots(account, [(now - dt.timedelta(hours=h) + half, 1_000_000 + 1000 * (48 - h))
                        for h in range(48, 0, -1)])
    closed_trades(account, config, symbol,
                  [("long", D("0.01"), D("50000000"), D("50500000"), D("250"))] * 3,
                  now - dt.timedelta(hours=5))
    log_in(page, web, "/")
    page.wait_for_selector(".perf-equity .perf-chart canvas")
    page.wait_for_function(f"() => window.tradesitePerformance.points({account.pk}) === 48")
    assert page.locator("#returns .perf-daily tr").count() >= 3  # header + two days at least
    assert page.locator("#trade-history tr").count() == 4  # header + three trades
    assert "carol-rsi" in page.locator("#trade-history").inner_text()
    assert "not run yet" in page.locator("#config-performance").inner_text()
    page.wait_for_function("() => window.tradesitePerformance.state().socket === 'open'")
    ts = int((now + dt.timedelta(minutes=5)).timestamp() * 1000)
    publish(wire.user_group(trader.pk), wire.private_message(
        wire.EQUITY_UPDATED, {"account": account.pk, "ts": ts, "equity": "1050000"}))
    page.wait_for_function(f"() => window.tradesitePerformance.points({account.pk}) === 49")
    page.click(f".perf-equity[data-account='{account.pk}'] button[data-range='1D']")
    page.wait_for_function(f"() => window.tradesitePerformance.points({account.pk}) === 24")
    screenshot("dashboard-performance")
