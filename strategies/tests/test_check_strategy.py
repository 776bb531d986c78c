"""``manage.py check_strategy``: flags look-ahead, a too-short lookback and an input-mutating
strategy, with a verdict a trader reads; passes every built-in strategy (the checks are the
ones the registry-wide tests run, ``strategies.checks``)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from markets.candles import upsert_candles
from strategies import checks, registry
from strategies.tests.conftest import random_walk
from strategies.tests.user_strategies import BUILT_IN, flawed, write_folder

pytestmark = pytest.mark.django_db
HOUR = 3_600_000
SERIES = random_walk(1500, seed=3, step_ms=HOUR, vol=0.01)

LOOKS_AHEAD = """
nxt = np.roll(close, -1)  # the next bar's close: not known at this bar's close
actions[nxt > close * 1.005] = ENTER_LONG
actions[nxt < close * 0.995] = EXIT_LONG
"""
SHORT_EMA = """
average = ind.ema(close, self.params.period)  # needs far more than lookback() = 10 bars
actions[ind.crossed_above(close, average)] = ENTER_LONG
actions[ind.crossed_below(close, average)] = EXIT_LONG
"""
MUTATES = """
close -= close[0]  # in place: changes the caller's candles
actions[ind.crossed_above(close, 0.0)] = ENTER_LONG
actions[ind.crossed_below(close, 0.0)] = EXIT_LONG
"""


@pytest.fixture
def stored(symbol):
    rows = zip(SERIES.open_time_ms.tolist(), SERIES.open.tolist(), SERIES.high.tolist(),
               SERIES.low.tolist(), SERIES.close.tolist(), SERIES.volume.tolist(), strict=True)
    upsert_candles(symbol.pk, "1h", list(rows))
    return symbol


def check(name, *extra) -> str:
    out = io.StringIO()
    call_command("check_strategy", name, "--venue", "sim", "--symbol", "KRW-BTC",
                 "--timeframe", "1h", *extra, stdout=out)
    return out.getvalue()


def failing(name) -> tuple[str, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("check_strategy", name, "--venue", "sim", "--symbol", "KRW-BTC",
                     "--timeframe", "1h", stdout=out)
    return out.getvalue(), str(excinfo.value)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_strategy_passes(stored, name):
    text = check(name)
    assert f"built-in strategy {name}" in text and "1500 candles" in text
    assert "FAIL" not in text and "PASS:" in text, text


def test_flawed_user_strategies_are_flagged_in_trader_words(stored, tmp_path, install):
    install([write_folder(tmp_path / "mine", {
        "peeks": flawed("peeks", LOOKS_AHEAD),
        "short_ema": flawed("short_ema", SHORT_EMA, lookback=10),
        "mutates": flawed("mutates", MUTATES),
    })])
    text, error = failing("peeks")
    assert error == "peeks failed: look-ahead, lookback"
    assert "FAIL look-ahead" in text and "change when the bars after them are removed" in text
    assert "bar 0 (2023-11-14 00:00 UTC)" in text and "do not trust a backtest of peeks" in text

    text, error = failing("short_ema")
    assert error == "short_ema failed: lookback"
    assert "ok   look-ahead" in text and "FAIL lookback" in text
    assert "lookback() is 10 bars" in text
    strategy = registry.build("short_ema")
    report = checks.check(strategy, SERIES)
    suggested = report.suggested_lookback
    assert suggested > 50 and f"smallest lookback that gives the same actions on the checked " \
        f"bars is {suggested}" in text
    # The suggestion is the smallest that works on the checked bars.
    full = strategy.signals(SERIES)
    bars = checks.sample_bars(full.actions, random=25)
    assert checks.lookback_bars(strategy, SERIES, bars, full, suggested) == []
    assert checks.lookback_bars(strategy, SERIES, bars, full, suggested - 1) != []

    text, error = failing("mutates")
    assert error == "mutates failed: purity"
    assert "signals() modified its input (close)" in text and "work on a copy" in text


def test_bad_input_is_a_message(stored):
    with pytest.raises(CommandError, match="unknown strategy 'nope'"):
        check("nope")
    with pytest.raises(CommandError, match="unknown parameter wndow for strategy 'rsi'"):
        check("rsi", "--params", '{"wndow": 3}')
    with pytest.raises(CommandError, match="only 0 stored 1h candles"):
        check("rsi", "--start", "2030-01-01")


def test_the_checks_catch_randomness_and_bad_parameters():
    from strategies.base import Signals, Strategy

    class Noisy(Strategy):
        name = "noisy"

        def lookback(self):
            return 0

        def signals(self, candles):
            import numpy as np

            return Signals(actions=np.random.default_rng().integers(0, 3, len(candles)).astype(
                np.int8))

    report = checks.check(Noisy(), SERIES[:300], random=5)
    failed = {f.check: f.message for f in report.problems()}
    assert "two runs on the same candles gave different actions" in failed["determinism"]
    assert "lookback() must return a whole number of bars of at least 1" in failed["parameters"]
    assert "cannot be checked" in failed["lookback"]
