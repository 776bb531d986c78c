"""run_backtest and ``manage.py backtest`` on candles stored in the test database."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from strategies import backtest, registry
from strategies.models import BacktestRun
from strategies.params import ParamError
from strategies.services import NoCandles, load_candles, run_backtest
from strategies.tests.conftest import DAY0_MS, random_walk
from strategies.trade_math import RiskParams

pytestmark = pytest.mark.django_db

HOUR = 3_600_000
START = dt.datetime.fromtimestamp(DAY0_MS / 1000, tz=dt.UTC)


@pytest.fixture
def stored(symbol):
    """600 hourly candles of a seeded random walk, imported into the database."""
    from markets.models import Candle

    candles = random_walk(600, seed=21, step_ms=HOUR, vol=0.01)
    Candle.objects.bulk_create(
        Candle(
            symbol=symbol, timeframe="1h",
            open_time=dt.datetime.fromtimestamp(t / 1000, tz=dt.UTC),
            open=o, high=h, low=lo, close=c, volume=v,
        )
        for t, o, h, lo, c, v in zip(
            candles.open_time_ms.tolist(), candles.open.tolist(), candles.high.tolist(),
            candles.low.tolist(), candles.close.tolist(), candles.volume.tolist(),
        )
    )
    return candles


def test_load_candles_returns_the_stored_arrays_with_warmup(symbol, stored):
    start = START + dt.timedelta(hours=100)
    loaded = load_candles(symbol, "1h", start, start + dt.timedelta(hours=50), before=30)
    assert len(loaded) == 80
    np.testing.assert_array_equal(loaded.open_time_ms, stored.open_time_ms[70:150])
    np.testing.assert_array_equal(loaded.close, stored.close[70:150])


def test_run_backtest_persists_what_the_pure_backtester_computes(symbol, stored):
    start = START + dt.timedelta(hours=100)
    end = START + dt.timedelta(hours=600)
    run = run_backtest(
        strategy="ma_cross", params={"short": 5}, symbol=symbol, timeframe="1h", start=start,
        end=end, fee_bps=10, slippage_bps=2, cash=1_000_000, risk={"stop_loss_pct": 3},
    )
    run.refresh_from_db()
    assert run.status == BacktestRun.Status.DONE
    strategy = registry.build("ma_cross", {"short": 5})
    signals = strategy.signals(stored)
    from strategies.base import Signals

    expected = backtest.simulate(
        stored[100:], Signals(actions=signals.actions[100:], score=signals.score[100:]),
        backtest.BacktestConfig(
            initial_cash=1_000_000, allow_short=False, timeframe="1h",
            risk=RiskParams(fee_rate=0.001, slippage_bps=2, stop_loss_pct=3),
        ),
    )
    assert run.stats["trade_count"] == expected.stats["trade_count"] > 0
    assert run.stats["final_equity"] == pytest.approx(expected.stats["final_equity"])
    assert run.trades[0]["entry_time_ms"] == expected.trades[0].entry_time_ms
    assert len(run.equity) == 500 and run.equity[-1][1] == pytest.approx(expected.equity[-1])
    assert run.settings["warmup_candles"] == strategy.lookback() == 62
    assert run.params["short"] == 5 and run.params["mid"] == 20


def test_run_backtest_explains_an_empty_range_and_bad_params(symbol, stored):
    later = START + dt.timedelta(days=400)
    with pytest.raises(NoCandles, match="import or backfill"):
        run_backtest(strategy="rsi", params=None, symbol=symbol, timeframe="1h", start=later,
                     end=later + dt.timedelta(days=1))
    with pytest.raises(ParamError, match="oversold"):
        run_backtest(strategy="rsi", params={"oversold": 80}, symbol=symbol, timeframe="1h",
                     start=START, end=later)
    assert not BacktestRun.objects.exists()


def test_backtest_command_prints_json_and_saves_the_run(symbol, stored):
    out = StringIO()
    call_command(
        "backtest", "--strategy", "bollinger", "--params", '{"period": 20}', "--venue", "sim",
        "--symbol", "KRW-BTC", "--timeframe", "1h", "--start", "2023-11-15",
        "--end", "2023-12-30", "--fee", "5", "--slippage", "1", "--cash", "5000000", "--json",
        stdout=out,
    )
    data = json.loads(out.getvalue())
    run = BacktestRun.objects.get(pk=data["id"])
    assert run.status == BacktestRun.Status.DONE
    assert data["stats"]["trade_count"] == len(data["trades"]) == run.stats["trade_count"]
    assert run.stats["initial_equity"] == 5_000_000


def test_backtest_command_rejects_an_unknown_symbol_and_bad_json(symbol, stored):
    with pytest.raises(CommandError, match="no symbol KRW-ETH"):
        call_command("backtest", "--strategy", "rsi", "--venue", "sim", "--symbol", "KRW-ETH",
                     "--timeframe", "1h", "--start", "2023-11-15", "--end", "2023-12-01")
    with pytest.raises(CommandError, match="JSON object"):
        call_command("backtest", "--strategy", "rsi", "--params", "{period: 14", "--venue",
                     "sim", "--symbol", "KRW-BTC", "--timeframe", "1h", "--start",
                     "2023-11-15", "--end", "2023-12-01")
