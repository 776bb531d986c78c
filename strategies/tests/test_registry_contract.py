"""Every registered strategy uses bars [0, i] only and its lookback() is long enough.

Paper and live trading call ``signals(candles.tail(lookback()))`` and act on the last action;
the backtester calls ``signals`` once on the whole series. These tests prove the two agree.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import checks, registry
from strategies.tests.conftest import from_returns, random_walk

NAMES = registry.names()

SERIES = {
    "1m_walk": random_walk(4000, seed=1, vol=0.002),
    "1m_trend": random_walk(4000, seed=2, vol=0.002, drift=0.0005),
    "1h_walk": random_walk(1500, seed=3, step_ms=3_600_000, vol=0.01),
    "1d_walk": random_walk(400, seed=4, step_ms=86_400_000, vol=0.03),
    # Illiquid 1m candles repeat the same close for many bars: ties must not flip decisions.
    "1m_flat_runs": from_returns(
        np.random.default_rng(5).choice([0.0, 0.0, 0.0, 0.01, -0.01, 0.002, -0.003], 3000)
    ),
}


def test_the_library_registers_every_planned_strategy():
    assert set(NAMES) >= {
        "bollinger", "ensemble", "macd_turtle", "ma_cross", "volatility_breakout",
        "dual_momentum", "rsi",
    }


@pytest.mark.parametrize("name", NAMES)
def test_strategy_declares_docstring_lookback_and_grid(name):
    cls = registry.get(name)
    strategy = cls()
    assert (cls.__doc__ and len(cls.__doc__.strip()) > 0) or cls.__module__
    assert strategy.lookback() >= 2
    described = cls.Params.describe()
    assert described, "a strategy declares its parameters"
    assert any(row["grid"] for row in described), "at least one parameter has an optimizer grid"


def _assert_causal(strategy, candles, indices):
    """The look-ahead and lookback checks ``manage.py check_strategy`` runs (one code)."""
    full = strategy.signals(candles)
    assert checks.contract(strategy, candles, full).ok
    assert checks.lookahead_bars(strategy, candles, indices, full) == [], "look-ahead"
    assert checks.lookback_bars(strategy, candles, indices, full) == [], (
        f"{strategy.name}: lookback() {strategy.lookback()} is too short"
    )


@pytest.mark.parametrize("series", sorted(SERIES))
@pytest.mark.parametrize("name", NAMES)
def test_signals_use_only_past_bars_and_lookback_suffices(name, series):
    # Every bar where something happens (up to 40 of them) and a spread of others; then
    # determinism, purity and the parameter checks: what check_strategy reports.
    report = checks.check(registry.build(name), SERIES[series], random=0)
    assert report.ok, [f.message for f in report.problems()]
    assert report.checked_bars >= 25


def test_default_strategies_trade_on_the_synthetic_series():
    # Guards the contract tests above against passing vacuously on all-HOLD output.
    for name in NAMES:
        actions = np.concatenate([registry.build(name).signals(c).actions for c in SERIES.values()])
        assert (actions != 0).any(), f"{name} never traded on any synthetic series"


returns = st.lists(
    st.floats(min_value=-0.05, max_value=0.05, allow_nan=False), min_size=30, max_size=300
)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=returns, step=st.sampled_from([60_000, 3_600_000]))
def test_signals_are_causal_on_generated_series(name, data, step):
    candles = from_returns(data, step_ms=step)
    strategy = registry.build(name)
    n = len(candles)
    _assert_causal(strategy, candles, sorted({n - 1, n // 2, n // 3, n - 2}))
