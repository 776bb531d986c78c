"""The demo's one-off preparation (``tradesite.demo_data``) against a running simulator: the
history of every simulated venue's symbols, the screener and the example backtest, once."""

from __future__ import annotations

import pytest

from markets.models import Candle, Exchange, Symbol
from simulator.server import SimConfig, start_in_thread
from strategies.models import BacktestRun, SymbolScreen
from tradesite import demo_data
from tradesite.demo import LIVELY_CONFIG, bootstrap

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def simulator(settings):
    handle = start_in_thread(SimConfig(seed=5, history_days=0.5))
    settings.SIMULATOR_UPBIT_PORT = handle.ports["upbit"]
    settings.SIMULATOR_BINANCE_PORT = handle.ports["binance"]
    settings.SIMULATOR_FUTURES_PORT = handle.ports["futures"]
    settings.SIMULATOR_BITHUMB_PORT = handle.ports["bithumb"]
    yield handle
    handle.stop()


def test_prepare_backfills_screens_and_backtests_once(simulator, clean_redis):
    bootstrap()
    first = demo_data.prepare(days=0.4, wait_s=10)
    assert first.unreachable == []
    simulated = Symbol.objects.filter(exchange__slug__in=demo_data.SIM_VENUES)
    assert simulated.count() == 8
    for symbol in simulated:  # about 0.4 days of 1m each (576 minutes)
        assert Candle.objects.filter(symbol=symbol, timeframe="1m").count() >= 500, symbol
    assert SymbolScreen.objects.filter(symbol__in=simulated).count() == 8
    run = BacktestRun.objects.get()
    assert run.status == BacktestRun.Status.DONE and run.config.name == LIVELY_CONFIG
    assert run.owner.username == "demo" and run.stats["trade_count"] > 10
    assert run.settings["risk"]["leverage"] == 5

    stored = Candle.objects.count()
    second = demo_data.prepare(days=0.4, wait_s=10)
    assert second.backtest == first.backtest and BacktestRun.objects.count() == 1
    assert Candle.objects.count() - stored < 20  # only the minutes since the first run


def test_prepare_gives_up_on_an_unreachable_simulator_within_its_bound(settings, clean_redis):
    bootstrap()
    Exchange.objects.filter(slug__in=demo_data.SIM_VENUES).update(
        rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")  # nothing listens there
    done = demo_data.prepare(days=0.1, wait_s=0)
    assert sorted(done.unreachable) == sorted(demo_data.SIM_VENUES)
    assert not Candle.objects.exists() and done.backtest is None
    assert "not reachable" in done.summary()
