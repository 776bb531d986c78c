"""The chart page across a Redis restart, in headless Chromium against the real web server
(``python -m tradesite.web`` in a subprocess, on a Redis of the test's own that is SIGKILLed and
started again on the same port): the page's socket stays open, the server's ``resync`` frame
makes the page fetch the candles stored meanwhile, and live bars flow again."""

from __future__ import annotations

import os
import time

import pytest

from markets import wire
from markets.timeframes import floor_ms
from tradesite.devservices import free_port
from tradesite.tests.test_browser_chart import (  # noqa: F401 (trader is a fixture)
    MINUTE,
    ROOT,
    WebServer,
    chart_bars,
    log_in,
    publish,
    store,
    trader,
)
from tradesite.tests.test_hub_recovery import private_redis  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web_on_private_redis(private_redis, monkeypatch, db):  # noqa: F811
    os.makedirs(ROOT / "test-artifacts", exist_ok=True)
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    server = WebServer(free_port())
    server.start()
    yield server
    server.stop()
    server.log.close()


def test_an_open_chart_page_refetches_what_it_missed_while_redis_restarted(
        web_on_private_redis, private_redis, page, symbol, trader):  # noqa: F811
    web = web_on_private_redis
    t0 = floor_ms(int(time.time() * 1000), "1m") - 400 * MINUTE
    store(symbol, t0, 300)
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'")
    assert len(chart_bars(page)) == 300

    private_redis.kill()
    store(symbol, t0 + 300 * MINUTE, 3)  # the stream stores closed candles; nobody hears of them
    private_redis.start()
    page.wait_for_function(
        "() => window.tradesiteChart.resyncs() >= 1"
        f" && window.tradesiteChart.bars().at(-1).t === {t0 + 302 * MINUTE}", timeout=30_000)
    assert [b["t"] for b in chart_bars(page)] == [t0 + i * MINUTE for i in range(303)]
    assert page.evaluate("window.tradesiteChart.reconnects()") == 0  # the socket stayed open

    group = wire.bars_group("sim", "KRW-BTC", "1m")
    publish(group, wire.bar_message(
        "sim", "KRW-BTC", "1m", {"t": t0 + 303 * MINUTE, "o": 99, "h": 102, "l": 98, "c": 101,
                                 "v": 2}, closed=True))
    page.wait_for_function(
        f"() => window.tradesiteChart.bars().at(-1).t === {t0 + 303 * MINUTE}", timeout=5000)
