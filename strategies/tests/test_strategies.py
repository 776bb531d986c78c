"""What each strategy in the library does, on series built to trigger it."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import indicators as ind
from strategies import registry
from strategies.backtest import BacktestConfig, run
from strategies.base import (
    ADD_LONG,
    ADD_SHORT,
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    HOLD,
    Candles,
)
from strategies.params import ParamError
from strategies.tests.conftest import DAY0_MS, bars, random_walk
from strategies.trade_math import RiskParams

HOUR = 3_600_000


def closes(values, step_ms=60_000) -> Candles:
    c = np.asarray(values, dtype=np.float64)
    o = np.concatenate(([c[0]], c[:-1]))
    rows = np.column_stack([o, np.maximum(o, c), np.minimum(o, c), c])
    return bars(rows, step_ms=step_ms)


def test_rsi_enters_on_crossing_up_through_oversold_and_exits_through_overbought():
    values = [100 - i for i in range(20)] + [81 + 2 * i for i in range(30)]
    candles = closes(values)
    actions = registry.build("rsi").signals(candles).actions
    value = ind.rsi(candles.close, 14)
    first_above_30 = int(np.flatnonzero(value > 30)[0])
    assert np.flatnonzero(actions == ENTER_LONG).tolist() == [first_above_30]
    assert (actions == EXIT_LONG).sum() == 0  # RSI never comes back down through 70


def test_ma_cross_goes_long_only_with_all_three_averages_rising():
    # A steady rise, a short dip (the short average crosses below the mid), then the rise resumes.
    values = [100 + 0.5 * i for i in range(100)]
    values += [values[-1] - (i + 1) for i in range(6)]
    values += [values[-1] + (i + 1) for i in range(40)]
    candles = closes(values)
    actions = registry.build("ma_cross").signals(candles).actions
    short, mid, long_ = (ind.sma(candles.close, n) for n in (7, 20, 60))
    entries = np.flatnonzero(actions == ENTER_LONG)
    assert entries.size == 1 and entries[0] > 106
    entry = entries[0]
    assert short[entry] > mid[entry] and short[entry - 1] <= mid[entry - 1]
    for avg in (short, mid, long_):
        assert avg[entry] > avg[entry - 1]
    assert (actions[100:entry] == EXIT_LONG).sum() == 1  # the dip's cross down only exits


def test_ma_cross_does_not_buy_a_cross_while_the_long_average_falls():
    values = [100 - 0.5 * i for i in range(80)] + [60 + 1.0 * i for i in range(15)]
    actions = registry.build("ma_cross").signals(closes(values)).actions
    assert (actions == ENTER_LONG).sum() == 0


def test_ma_cross_rejects_averages_out_of_order():
    with pytest.raises(ParamError, match="short < mid < long"):
        registry.build("ma_cross", {"short": 30, "mid": 20})


def test_bollinger_buys_the_close_back_inside_and_sells_at_the_middle():
    rng = np.random.default_rng(0)
    values = [*(100 + rng.normal(0, 0.3, 30)), 95.0, 99.0, 99.5, 100.5, 100.6]
    candles = closes(values)
    actions = registry.build("bollinger").signals(candles).actions
    assert actions[31] == ENTER_LONG  # 95 closed below the lower band, 99 is back inside
    assert actions[33] == EXIT_LONG  # 100.5 crosses the middle band from below


def _band_series(sign: float) -> Candles:
    """Noise near 100, a close outside the band (below for ``sign`` 1, above for -1), back
    inside (the entry), through the middle band and on through the opposite band."""
    rng = np.random.default_rng(0)
    noise = list(100 + rng.normal(0, 0.3, 30))
    moves = [-5.0, -1.0, -0.5, 0.5, 0.6, 1.5, 2.5, 4.0, 6.0, 8.0]
    return closes([*noise, *(100 + sign * m for m in moves)])


def _first(mask: np.ndarray, after: int) -> int:
    return int(np.flatnonzero(mask[after + 1:])[0]) + after + 1


@pytest.mark.parametrize("exit_mode", ["middle", "opposite", "none"])
def test_bollinger_exit_modes_on_a_long(exit_mode):
    candles = _band_series(1.0)
    actions = registry.build("bollinger", {"exit": exit_mode}).signals(candles).actions
    upper, middle, _ = ind.bollinger(candles.close, 20, 2.0)
    assert np.flatnonzero(actions == ENTER_LONG).tolist() == [31]  # same entries in every mode
    exits = np.flatnonzero(actions == EXIT_LONG).tolist()
    through_middle = _first(ind.crossed_above(candles.close, middle), 31)
    through_upper = _first(ind.crossed_above(candles.close, upper), 31)
    assert through_middle < through_upper
    expected = {"middle": [through_middle], "opposite": [through_upper], "none": []}[exit_mode]
    assert [i for i in exits if i > 31] == expected


@pytest.mark.parametrize("exit_mode", ["middle", "opposite", "none"])
def test_bollinger_exit_modes_on_a_short(exit_mode):
    candles = _band_series(-1.0)
    actions = registry.build("bollinger", {"exit": exit_mode}).signals(candles).actions
    _, middle, lower = ind.bollinger(candles.close, 20, 2.0)
    assert np.flatnonzero(actions == ENTER_SHORT).tolist() == [31]
    exits = [i for i in np.flatnonzero(actions == EXIT_SHORT).tolist() if i > 31]
    through_middle = _first(ind.crossed_below(candles.close, middle), 31)
    through_lower = _first(ind.crossed_below(candles.close, lower), 31)
    expected = {"middle": [through_middle], "opposite": [through_lower], "none": []}[exit_mode]
    assert exits == expected


def test_bollinger_default_exit_is_the_middle_band_and_backtests_the_same():
    candles = random_walk(3_000, seed=4, vol=0.004)
    default = registry.build("bollinger")
    middle = registry.build("bollinger", {"exit": "middle"})
    assert default.params.exit == "middle"
    assert np.array_equal(default.signals(candles).actions, middle.signals(candles).actions)
    config = BacktestConfig(risk=RiskParams(fee_rate=0.0005))
    a, b = run(default, candles, config), run(middle, candles, config)
    assert a.trades and a.trades == b.trades
    without = run(registry.build("bollinger", {"exit": "none"}), candles, config)
    assert len(without.trades) < len(a.trades)  # one position held to the end instead


def test_bollinger_exit_must_be_a_known_mode():
    with pytest.raises(ParamError, match="exit must be one of middle, opposite, none; got 'top'"):
        registry.build("bollinger", {"exit": "top"})


def test_optimizer_searches_the_exit_mode_only_when_named():
    from strategies.optimizer import Choice, Space

    params = registry.get("bollinger").Params
    assert "exit" not in Space.from_params(params).dims  # the default grid is unchanged
    space = Space.from_params(params, {"exit": ["middle", "opposite", "none"], "k": [2.0]})
    assert space.dims["exit"] == Choice(("middle", "opposite", "none"))
    assert [p["exit"] for p in space.grid()] == ["middle", "opposite", "none"]
    with pytest.raises(ParamError, match="exit must be one of middle, opposite, none; got 'top'"):
        Space.from_params(params, {"exit": ["middle", "top"]})


def test_volatility_breakout_enters_at_the_level_and_leaves_at_the_next_days_open():
    rows = []
    for day in range(3):
        for hour in range(24):
            if day == 1 and hour == 3:
                rows.append((105.0, 111.0, 104.0, 110.5))  # crosses 105 + 0.5 × 10 = 110
            elif day == 0:
                rows.append((105.0, 110.0 if hour == 5 else 106.0, 100.0 if hour == 7 else 104.0,
                             105.0))
            else:
                rows.append((105.0, 106.0, 104.0, 105.0))
    candles = bars(rows, step_ms=HOUR)
    strategy = registry.build("volatility_breakout", {"k_value": 0.5, "utc_offset_hours": 0})
    actions = strategy.signals(candles).actions
    assert np.flatnonzero(actions == ENTER_LONG).tolist() == [24 + 3]
    assert actions[24 + 23] == EXIT_LONG and actions[23] == EXIT_LONG
    result = run(strategy, candles, BacktestConfig(risk=RiskParams(fee_rate=0.0)))
    (trade,) = result.trades
    assert trade.entry_time_ms == DAY0_MS + 28 * HOUR  # next bar's open, not the level
    assert trade.exit_time_ms == DAY0_MS + 48 * HOUR  # the next day's open


def test_volatility_breakout_skips_a_day_after_a_partial_yesterday():
    rows = [(105.0, 106.0, 104.0, 105.0)] * 12 + [(105.0, 130.0, 104.0, 125.0)] * 24
    start = DAY0_MS + 12 * HOUR  # the first day starts at noon: its range is partial
    candles = bars(rows, step_ms=HOUR, start_ms=start)
    strategy = registry.build("volatility_breakout", {"utc_offset_hours": 0})
    assert np.isnan(strategy.levels(candles)).all()
    assert (strategy.signals(candles).actions == ENTER_LONG).sum() == 0


def test_dual_momentum_holds_only_the_strongest_symbol_above_cash():
    rising = closes([100 * 1.01**i for i in range(40)])
    strategy = registry.build("dual_momentum", {"window": 12})
    alone = strategy.signals(rising).actions
    assert np.flatnonzero(alone == ENTER_LONG).tolist() == [12]
    stronger = np.array([100 * 1.02**i for i in range(40)])
    beaten = strategy.signals(rising, peer_closes={"ETHUSDT": stronger}).actions
    assert (beaten == ENTER_LONG).sum() == 0
    weaker = np.array([100 * 1.001**i for i in range(40)])
    assert (strategy.signals(rising, peer_closes={"X": weaker}).actions == alone).all()
    with pytest.raises(ValueError, match="align"):
        strategy.signals(rising, peer_closes={"ETHUSDT": stronger[:10]})


def test_ensemble_score_is_the_weighted_mean_of_the_votes():
    candles = random_walk(3000, seed=9)
    strategy = registry.build("ensemble", {"w_trend": 2.0, "w_day": 0.0, "w_scalping": 0.0})
    votes = strategy.votes(candles)
    score = strategy.signals(candles).score
    weights = np.array([2.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    expected = (weights[:, None] * np.nan_to_num(votes)).sum(axis=0) / weights.sum()
    valid = ~np.isnan(score)
    np.testing.assert_allclose(score[valid], expected[valid])
    assert set(np.unique(votes[~np.isnan(votes)])) <= {-1.0, 0.0, 1.0}
    actions = strategy.signals(candles).actions
    enter = np.flatnonzero(actions == ENTER_LONG)
    assert (score[enter] >= 0.2).all() and (score[enter - 1] < 0.2).all()


def test_ensemble_day_vote_compares_with_the_previous_days_last_close():
    values = [100.0] * 24 + [101.0, 99.0, 102.0]
    candles = closes(values, step_ms=HOUR)
    strategy = registry.build("ensemble")
    day_vote = strategy.votes(candles)[4]
    assert np.isnan(day_vote[:24]).all()
    assert day_vote[24:].tolist() == [1.0, -1.0, 1.0]


def test_ensemble_needs_a_positive_weight():
    names = ["w_trend", "w_momentum", "w_swing", "w_scalping", "w_day", "w_price_action"]
    with pytest.raises(ParamError, match="weight"):
        registry.build("ensemble", dict.fromkeys(names, 0.0))


def test_macd_turtle_pyramids_half_then_one_and_a_half_then_single_units_up_to_four():
    candles = random_walk(20_000, seed=11, vol=0.003)
    signals = registry.build("macd_turtle").signals(candles)
    units = 0.0
    sides = {ENTER_LONG: 1, ENTER_SHORT: -1, ADD_LONG: 1, ADD_SHORT: -1}
    held = 0
    saw_confirm = saw_pyramid = False
    for action, size in zip(signals.actions.tolist(), signals.size.tolist()):
        if action in (ENTER_LONG, ENTER_SHORT):
            assert size == 0.5
            units, held = 0.5, sides[action]
        elif action in (ADD_LONG, ADD_SHORT):
            assert sides[action] == held, "adds only to the side held"
            assert size == (1.5 if units == 0.5 else 1.0)
            saw_confirm |= size == 1.5
            saw_pyramid |= size == 1.0
            units += size
            assert units <= 4.0
        elif action != HOLD:
            units, held = 0.0, 0
    assert saw_confirm and saw_pyramid
