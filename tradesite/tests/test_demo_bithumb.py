"""The demo's Bithumb venue on the simulator (issue 19 item 9): a Bithumb paper config on it
gets candles from the collector and runs, against a simulator serving Bithumb on its port."""

from __future__ import annotations

import pytest

from markets.backfill import adapter_for
from markets.collect import collect
from markets.models import Account, Candle, Exchange, Symbol
from markets.simulator.server import SimConfig, start_in_thread
from strategies.models import StrategyConfig
from tradesite.demo import bootstrap

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def simulator(settings):
    handle = start_in_thread(SimConfig(seed=3, history_days=0.2, venues=("bithumb",)))
    settings.SIMULATOR_BITHUMB_PORT = handle.ports["bithumb"]
    yield handle
    handle.stop()


def test_a_bithumb_paper_config_of_the_demo_gets_candles_from_the_simulator(
    simulator, clean_redis
):
    bootstrap()
    venue = Exchange.objects.get(slug="sim-bithumb")
    assert venue.rest_url == simulator.bithumb_url
    # Only the Bithumb venue: the demo's other simulated venues are not running in this test.
    Exchange.objects.exclude(pk=venue.pk).update(is_active=False)
    account = Account.objects.get(owner__username="demo", exchange=venue,
                                  label="Demo paper (sim Bithumb)")
    btc = Symbol.objects.get(exchange=venue, code="KRW-BTC")
    config = StrategyConfig(owner=account.owner, name="Bithumb Bollinger", strategy="bollinger",
                            symbol=btc, account=account, timeframe="5m", is_active=True)
    config.full_clean()
    config.save()
    clock = simulator.sim.clock_ms

    report = collect(clock_ms=clock,
                     adapter_factory=lambda ex: adapter_for(ex, clock=lambda: clock() / 1000))

    assert not report.errors and not report.venues_skipped, report
    for timeframe in ("1m", "5m"):
        assert Candle.objects.filter(symbol=btc, timeframe=timeframe).count() > 20
