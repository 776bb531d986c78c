"""Evaluation on closed bars: the backtester's signals(), stored once, pushed to the owner only."""

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from markets import wire
from markets.candles import upsert_candles
from orders import evaluation, tasks
from strategies import registry
from strategies.base import ENTER_LONG, EXIT_LONG, HOLD, Signals, Strategy
from strategies.models import Signal, StrategyConfig
from strategies.params import Params, param

pytestmark = pytest.mark.django_db(transaction=True)
MINUTE = 60_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


@dataclasses.dataclass(frozen=True)
class EveryNParams(Params):
    n: int = param(3, min=1, max=100)


class EveryN(Strategy):
    """Enters on bars whose index since the epoch minute is a multiple of n, exits one bar later."""

    name = "test_every_n"
    Params = EveryNParams

    def lookback(self):
        return 2

    def signals(self, candles):
        minute = candles.open_time_ms // MINUTE
        actions = np.full(len(candles), HOLD, dtype=np.int8)
        actions[minute % self.params.n == 0] = ENTER_LONG
        actions[minute % self.params.n == 1] = EXIT_LONG
        return Signals(actions=actions, score=np.linspace(0, 1, len(candles)))


class Broken(Strategy):
    name = "test_broken"
    Params = EveryNParams

    def lookback(self):
        return 1

    def signals(self, candles):
        raise RuntimeError("bug in a user's strategy")


@pytest.fixture(autouse=True)
def strategies():
    registry.register(EveryN)
    registry.register(Broken)
    yield
    registry.unregister(EveryN.name)
    registry.unregister(Broken.name)


def store(symbol, closes, start=T0):
    rows = [(start + i * MINUTE, c, c * 1.01, c * 0.99, c, 1.0) for i, c in enumerate(closes)]
    upsert_candles(symbol.pk, "1m", rows)


@pytest.fixture
def configs(symbol, make_trader, make_account):
    alice, bob = make_trader("alice"), make_trader("bob")

    def make(owner, strategy="test_every_n", params=None, name=None):
        account = make_account(owner, label=f"acc-{owner.username}-{name or strategy}")
        return StrategyConfig.objects.create(
            owner=owner,
            name=name or strategy,
            strategy=strategy,
            params=params or {"n": 3},
            symbol=symbol,
            timeframe="1m",
            account=account,
            is_active=True,
        )

    return {"alice": make(alice), "bob": make(bob), "make": make, "alice_user": alice}


def test_signal_is_stored_once_per_bar_even_if_evaluated_twice(symbol, configs):
    store(symbol, [100.0, 101.0, 102.0, 103.0])  # minute 3 -> enter (n=3)
    bar = T0 + 3 * MINUTE
    first = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", bar)
    second = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", bar)
    assert first.signals_created == 2 and second.signals_created == 0
    assert second.signals_existing == 2
    signal = Signal.objects.get(config=configs["alice"])
    assert signal.action == "enter_long" and signal.bar_time == datetime(
        2026, 1, 1, 0, 3, tzinfo=UTC
    )
    assert float(signal.price) == 103.0 and signal.reason["strategy"] == "test_every_n"


def test_bar_not_stored_yet_is_skipped(symbol, configs):
    store(symbol, [100.0, 101.0])
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    assert report.skipped_missing_bar == 2 and not Signal.objects.exists()


def test_one_broken_config_does_not_stop_the_others(symbol, configs):
    configs["make"](configs["alice_user"], strategy="test_broken", name="broken")
    store(symbol, [100.0, 101.0, 102.0, 103.0])
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    assert report.errors == 1 and report.signals_created == 2


def test_inactive_configs_and_other_timeframes_are_not_evaluated(symbol, configs):
    StrategyConfig.objects.filter(pk=configs["bob"].pk).update(is_active=False)
    store(symbol, [100.0, 101.0, 102.0, 103.0])
    report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    assert report.configs == 1
    assert evaluation.evaluate_bar("sim", "KRW-BTC", "5m", T0).configs == 0


@pytest.mark.redis
def test_signal_is_pushed_to_its_owner_only(symbol, configs, redis_url):
    layer = get_channel_layer()
    alice_channel = async_to_sync(layer.new_channel)()
    bob_channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(wire.user_group(configs["alice"].owner_id), alice_channel)
    async_to_sync(layer.group_add)(wire.user_group(configs["bob"].owner_id), bob_channel)
    StrategyConfig.objects.filter(pk=configs["bob"].pk).update(is_active=False)
    store(symbol, [100.0, 101.0, 102.0, 103.0])
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    message = async_to_sync(layer.receive)(alice_channel)
    assert message["type"] == "signal.created"
    assert message["config"] == configs["alice"].pk and message["action"] == "enter_long"
    assert message["symbol"] == "sim:KRW-BTC" and message["bar_time"] == T0 + 3 * MINUTE

    async def nothing_for_bob():
        import asyncio

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(bob_channel), 0.5)

    async_to_sync(nothing_for_bob)()


def test_run_trading_catches_up_on_the_newest_bar(symbol, configs):
    store(symbol, [100.0, 101.0, 102.0, 103.0])
    assert tasks.run_trading() == 2
    assert tasks.run_trading() == 0


def test_live_evaluation_bar_by_bar_equals_the_full_series_signals(symbol, configs):
    """Parity with the backtester: evaluating each bar as it closes gives the same actions as
    one signals() call over the whole series, for a real library strategy."""
    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    store(symbol, closes.tolist())
    config = configs["make"](
        configs["alice_user"],
        strategy="rsi",
        params={"period": 14, "oversold": 40, "overbought": 60},
        name="rsi",
    )
    StrategyConfig.objects.exclude(pk=config.pk).update(is_active=False)
    for i in range(100, 400):
        evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + i * MINUTE)
    stored = {
        (int(s.bar_time.timestamp() * 1000), s.action) for s in Signal.objects.filter(config=config)
    }
    from markets.candles import load_candles
    from strategies.base import ACTION_NAMES

    full = config.build_strategy().signals(load_candles(symbol.pk, "1m"))
    expected = {
        (T0 + i * MINUTE, ACTION_NAMES[int(a)])
        for i, a in enumerate(full.actions)
        if i >= 100 and a != HOLD
    }
    assert stored == expected and len(expected) > 4
