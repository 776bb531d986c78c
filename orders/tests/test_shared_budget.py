"""Live orders count against the same shared rate-limit budget as market data (issue 14): a
second process makes market-data requests through the adapter factory while this process
places live orders through ``LiveBroker.for_account``, both on the simulator's Binance spot with
a small request-weight budget. Binance counts one weight budget per IP for everything; so does
the simulator. Together the two processes stay within it and the venue refuses nothing.

Before the factory, the broker's orders went through a fresh in-process limiter, invisible to
the other process: that process then spent the whole budget on its own and met 429s.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from markets.adapters import adapter_for, venue_limiter
from markets.exchanges.base import OrderRequest, RateGroup
from markets.exchanges.ratelimit import KEY_PREFIX, RedisRateLimiter
from orders.brokers import LiveBroker
from orders.tests.live_helpers import live_account
from orders.tests.test_live_execution import KEY, SECRET
from simulator.server import SimConfig, start_in_thread

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
#: Request weight per minute, for the simulator and both processes' limiters: this process
#: spends 25 (a price lookup 2, exchangeInfo 20, three orders 1 each), the other the rest.
BUDGET = 45
ORDERS = 3


@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=11, history_days=0.05, venues=("binance",)))
    yield handle
    handle.stop()


@pytest.fixture
def venue(simulator, settings, trader):
    settings.TRADING_LIVE = True
    slug = "budget" + uuid.uuid4().hex[:8]  # a budget of its own in the shared Redis
    limits = {"weight": [BUDGET, 60.0]}
    settings.EXCHANGE_RATE_LIMITS = {slug: limits}
    account, _ = live_account(trader, "binance_spot", simulator.binance_url, "BTCUSDT", "BTC",
                              "USDT", KEY, SECRET, slug=slug, name="Budget sim", label="live",
                              quote_asset="USDT", tick_size=Decimal("0.01"),
                              step_size=Decimal("0.00001"), min_notional=Decimal("5"))
    simulator.set_faults(rate_limit_budget=BUDGET)
    simulator.answers.reset()
    yield account.exchange, account, limits
    simulator.set_faults(rate_limit_budget=None)


def spent(limiter: RedisRateLimiter, group: str = "weight") -> int:
    """Weight the shared log holds for ``group`` (entries are ``<uuid>:<weight>``)."""
    window_s = limiter.groups[group].window_s
    now = limiter.client.time()
    now_ms = now[0] * 1000 + now[1] // 1000
    members = limiter.client.zrangebyscore(f"{KEY_PREFIX}{limiter.venue}:{group}",
                                           now_ms - window_s * 1000, "+inf")
    return sum(int(str(m).rsplit(":", 1)[1]) for m in members)


def test_the_factory_gives_every_caller_the_venues_redis_budget(venue):
    exchange, account, _ = venue
    broker = LiveBroker.for_account(account)
    data = adapter_for(exchange)
    for adapter in (broker.adapter, data):
        assert isinstance(adapter.limiter, RedisRateLimiter)
        assert adapter.limiter.venue == exchange.slug
        assert adapter.limiter.groups["weight"] == RateGroup(BUDGET, 60.0)
    broker.close(), data.close()


def test_live_orders_and_another_process_share_one_budget(venue, simulator):
    exchange, account, limits = venue
    broker = LiveBroker.for_account(account)
    price = adapter_for(exchange).fetch_candles(
        "BTCUSDT", "1m", int(time.time() * 1000) - 600_000, int(time.time() * 1000))[-1].close
    for i in range(ORDERS):
        info = broker.place(OrderRequest("BTCUSDT", "buy", "market", Decimal("0.0002"), None,
                                         f"budget-{i}-{uuid.uuid4().hex[:8]}"),
                            last_price=Decimal(repr(price)), ts_ms=int(time.time() * 1000))
        assert info.status == "filled"
    broker.close()
    here = spent(venue_limiter(exchange))
    assert here >= ORDERS + 2  # the orders and the price lookup are in the shared log

    child = subprocess.run(
        [sys.executable, "-m", "orders.tests.budget_child", json.dumps({
            "slug": exchange.slug, "rest_url": simulator.binance_url, "symbol": "BTCUSDT",
            "limits": limits})],
        cwd=ROOT, env=dict(os.environ, DJANGO_SETTINGS_MODULE="tradesite.settings"),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["error"] is None  # stopped by the shared budget, never by a refusal
    assert report["requests"] >= 1, (here, report, simulator.answers.snapshot())
    assert BUDGET - here - 2 < 2 * report["requests"]  # it used what was left

    total = spent(venue_limiter(exchange))
    assert total <= BUDGET
    assert total == here + 2 * report["requests"]  # klines weigh 2
    stats = requests.get(simulator.binance_url + "/_sim/stats", timeout=5).json()
    answers = stats["answers"]["binance"]
    assert set(answers) == {"200"}, answers  # no 429, no 418: the venue refused nothing
    assert answers["200"] == stats["total"] >= ORDERS + 2 + report["requests"]
