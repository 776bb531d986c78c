"""The backtester on hand-computed five-to-ten-bar cases, and its invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import registry, sizing
from strategies.backtest import BacktestConfig, run, simulate
from strategies.base import (
    ADD_LONG,
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    HOLD,
    Signals,
)
from strategies.params import ParamError
from strategies.tests.conftest import DAY0_MS, MINUTE_MS, bars, from_returns, random_walk
from strategies.trade_math import RiskParams

FLAT = (100.0, 100.0, 100.0, 100.0)


def backtest(rows, actions, *, size=None, step_ms=MINUTE_MS, minute_candles=None,
             sizing_params=None, intrabar="stop_first", allow_short=True, cash=1000.0, **risk):
    risk.setdefault("fee_rate", 0.0)
    config = BacktestConfig(
        initial_cash=cash, risk=RiskParams(**risk), sizing=sizing_params, intrabar=intrabar,
        allow_short=allow_short,
    )
    candles = bars(rows, step_ms=step_ms)
    signals = Signals(
        actions=np.array(actions, dtype=np.int8),
        size=None if size is None else np.array(size, dtype=np.float64),
    )
    return simulate(candles, signals, config, minute_candles=minute_candles)


def test_fees_are_charged_on_entry_and_exit_notional_and_sizing_leaves_room_for_them():
    result = backtest(
        [FLAT, (100, 105, 99, 104), (110, 110, 110, 110)],
        [ENTER_LONG, EXIT_LONG, HOLD],
        fee_rate=0.001,
    )
    qty = 1000 / (100 * (1 + 0.001))
    entry_fee = qty * 100 * 0.001
    exit_fee = qty * 110 * 0.001
    (trade,) = result.trades
    assert trade.entry_time_ms == DAY0_MS + MINUTE_MS  # decided on bar 0, filled at bar 1's open
    assert trade.exit_time_ms == DAY0_MS + 2 * MINUTE_MS
    assert trade.size == pytest.approx(qty)
    assert trade.fees == pytest.approx(entry_fee + exit_fee)
    assert trade.pnl == pytest.approx(qty * 10 - entry_fee - exit_fee)
    assert trade.reason == "signal"
    assert result.equity[1] == pytest.approx(1000 - entry_fee + qty * 4)
    assert result.equity[-1] == pytest.approx(1000 + trade.pnl)


def test_slippage_moves_both_fills_against_the_trader():
    result = backtest(
        [FLAT, FLAT, (110, 110, 110, 110)], [ENTER_LONG, EXIT_LONG, HOLD], slippage_bps=10
    )
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(100.1)
    assert trade.exit_price == pytest.approx(109.89)
    assert trade.pnl == pytest.approx(1000 / 100.1 * (109.89 - 100.1))


def test_stop_loss_fills_at_the_stop_inside_the_bar():
    result = backtest(
        [FLAT, (100, 101, 99, 100), (99, 99.5, 94, 96), FLAT],
        [ENTER_LONG, HOLD, HOLD, HOLD],
        stop_loss_pct=5,
    )
    (trade,) = result.trades
    assert (trade.reason, trade.exit_price, trade.pnl) == ("stop_loss", 95.0, pytest.approx(-50))
    assert trade.exit_time_ms == DAY0_MS + 2 * MINUTE_MS
    assert result.equity[-1] == pytest.approx(950)


def test_a_gap_through_the_stop_fills_at_the_open():
    result = backtest(
        [FLAT, (100, 101, 99, 100), (90, 91, 88, 89)], [ENTER_LONG, HOLD, HOLD], stop_loss_pct=5
    )
    (trade,) = result.trades
    assert (trade.reason, trade.exit_price) == ("stop_loss", 90.0)
    assert trade.pnl == pytest.approx(-100)


def test_take_profit_fills_at_the_target():
    result = backtest(
        [FLAT, (100, 101, 99, 100), (101, 111, 100, 105)], [ENTER_LONG, HOLD, HOLD],
        take_profit_pct=10,
    )
    (trade,) = result.trades
    assert (trade.reason, trade.exit_price, trade.pnl) == pytest.approx(("take_profit", 110.0, 100))


def test_a_bar_touching_stop_and_target_takes_the_stop_and_is_counted():
    rows = [FLAT, (100, 101, 99, 100), (100, 111, 94, 100)]
    result = backtest(rows, [ENTER_LONG, HOLD, HOLD], stop_loss_pct=5, take_profit_pct=10)
    (trade,) = result.trades
    assert (trade.reason, trade.exit_price) == ("stop_loss", 95.0)
    assert result.stats["ambiguous_bars"] == 1
    optimistic = backtest(rows, [ENTER_LONG, HOLD, HOLD], stop_loss_pct=5, take_profit_pct=10,
                          intrabar="target_first")
    assert optimistic.trades[0].reason == "take_profit"
    assert optimistic.trades[0].exit_price == pytest.approx(110.0)


def _five_minute_case(minutes):
    step = 5 * MINUTE_MS
    rows = [FLAT, (100, 100.5, 99.5, 100), (100, 111, 94, 100)]
    start = DAY0_MS + 2 * step
    minute_candles = bars(minutes, step_ms=MINUTE_MS, start_ms=start)
    return backtest(rows, [ENTER_LONG, HOLD, HOLD], step_ms=step, minute_candles=minute_candles,
                    stop_loss_pct=5, take_profit_pct=10)


def test_one_minute_replay_resolves_an_ambiguous_bar_to_the_target_when_it_came_first():
    result = _five_minute_case([
        (100, 103, 99, 102), (102, 111, 101, 109), (109, 109, 94, 95), (95, 99, 95, 98),
        (98, 100, 97, 100),
    ])
    (trade,) = result.trades
    assert (trade.reason, trade.exit_price) == ("take_profit", pytest.approx(110.0))
    assert result.stats["ambiguous_bars"] == 1
    assert result.stats["ambiguous_bars_replayed"] == 1


def test_one_minute_replay_takes_the_stop_when_it_came_first():
    result = _five_minute_case([
        (100, 100, 94, 96), (96, 111, 96, 109), (109, 110, 99, 100), (100, 100, 99, 100),
        (100, 100, 99, 100),
    ])
    assert (result.trades[0].reason, result.trades[0].exit_price) == ("stop_loss", 95.0)


def test_trailing_stop_follows_the_best_high_of_previous_bars():
    result = backtest(
        [FLAT, (100, 104, 99, 103), (103, 120, 102, 118), (118, 119, 113, 115), FLAT],
        [ENTER_LONG, HOLD, HOLD, HOLD, HOLD],
        trailing_stop_pct=5,
    )
    (trade,) = result.trades
    assert trade.reason == "trailing_stop"
    assert trade.exit_price == pytest.approx(120 * 0.95)
    assert trade.exit_time_ms == DAY0_MS + 3 * MINUTE_MS
    assert trade.pnl == pytest.approx(10 * (114 - 100))


def test_leverage_liquidation_loses_the_isolated_margin():
    result = backtest(
        [FLAT, (100, 101, 99, 100), (99, 99, 90, 91), FLAT],
        [ENTER_LONG, HOLD, HOLD, HOLD],
        leverage=10, maintenance_margin_rate=0.005, sizing_params=sizing.Fraction(fraction=0.5),
    )
    (trade,) = result.trades
    assert trade.size == pytest.approx(50)  # margin 500 × 10 / 100
    assert trade.reason == "liquidation"
    assert trade.exit_price == pytest.approx((50 * 100 - 500) / (50 * 0.995))
    assert trade.pnl == pytest.approx(-500)
    assert result.equity[-1] == pytest.approx(500)


def test_short_profits_when_price_falls():
    result = backtest(
        [FLAT, (100, 101, 95, 96), (90, 91, 89, 90)], [ENTER_SHORT, EXIT_SHORT, HOLD]
    )
    (trade,) = result.trades
    assert (trade.side, trade.entry_price, trade.exit_price) == ("short", 100.0, 90.0)
    assert trade.pnl == pytest.approx(100)
    assert result.equity[1] == pytest.approx(1000 + 10 * (100 - 96))


def test_entering_the_other_side_reverses_at_the_same_open():
    result = backtest(
        [FLAT, FLAT, (105, 105, 105, 105), (95, 95, 95, 95)],
        [ENTER_LONG, ENTER_SHORT, HOLD, HOLD],
    )
    long_trade, short_trade = result.trades
    assert (long_trade.reason, long_trade.exit_price, long_trade.pnl) == (
        "reverse", 105.0, pytest.approx(50))
    assert short_trade.side == "short" and short_trade.entry_price == 105.0
    assert short_trade.reason == "end_of_data" and short_trade.exit_price == 95.0


def test_pyramiding_adds_units_at_a_new_average_entry():
    result = backtest(
        [FLAT, FLAT, (110, 110, 110, 110), (120, 120, 120, 120)],
        [ENTER_LONG, ADD_LONG, EXIT_LONG, HOLD],
        size=[0.5, 1.0, 0.0, 0.0],
        sizing_params=sizing.FixedQuote(amount=100.0),
    )
    (trade,) = result.trades
    added = 100 / 110
    assert trade.entries == 2
    assert trade.size == pytest.approx(0.5 + added)
    assert trade.entry_price == pytest.approx((0.5 * 100 + added * 110) / (0.5 + added))
    assert trade.pnl == pytest.approx(0.5 * 20 + added * 10)


def test_daily_target_stops_new_entries_until_the_next_day():
    six_hours = 6 * 3_600_000
    result = backtest(
        [FLAT, (100, 111, 100, 110), (110, 110, 110, 110), (110, 110, 110, 110),
         (110, 110, 110, 110)],
        [ENTER_LONG, EXIT_LONG, ENTER_LONG, ENTER_LONG, HOLD],
        step_ms=six_hours, daily_target_pct=5,
    )
    first, second = result.trades
    assert first.pnl == pytest.approx(100)
    assert first.exit_time_ms == DAY0_MS + 2 * six_hours
    # The entry decided at 12:00 (fill 18:00) is refused; the one at 18:00 fills next day 00:00.
    assert second.entry_time_ms == DAY0_MS + 4 * six_hours
    assert result.stats["halted_days"] == 1


def test_daily_max_loss_counts_in_the_configured_utc_offset():
    hour = 3_600_000
    rows = [FLAT, (100, 100, 90, 90), (90, 90, 90, 90), (90, 90, 90, 90)]
    # Bars at 00:00..03:00 UTC; with UTC+2 the day boundary is not crossed, so the halt holds.
    result = backtest(rows, [ENTER_LONG, EXIT_LONG, ENTER_LONG, HOLD], step_ms=hour,
                      daily_max_loss_pct=5, day_offset_hours=2)
    assert len(result.trades) == 1
    assert result.stats["halted_days"] == 1


def test_a_signal_on_the_last_bar_is_not_filled():
    result = backtest([FLAT, FLAT], [HOLD, ENTER_LONG])
    assert result.trades == []
    assert result.stats["total_return"] == 0


def test_without_shorts_enter_short_only_closes_the_long():
    result = backtest(
        [FLAT, FLAT, (105, 105, 105, 105), (95, 95, 95, 95)],
        [ENTER_LONG, ENTER_SHORT, HOLD, HOLD], allow_short=False,
    )
    (trade,) = result.trades
    assert (trade.side, trade.reason, trade.exit_price) == ("long", "signal", 105.0)


def test_sizing_methods_match_strategies_sizing():
    params = sizing.FixedQuote(amount=250.0)
    result = backtest([FLAT, FLAT, FLAT], [ENTER_LONG, HOLD, HOLD], sizing_params=params,
                      leverage=3)
    expected = sizing.quantity(params, equity=1000.0, price=100.0, leverage=3)
    assert result.trades[0].size == pytest.approx(expected)


def test_stats_and_result_are_json_ready():
    candles = random_walk(3000, seed=5)
    config = BacktestConfig(risk=RiskParams(stop_loss_pct=1.0, take_profit_pct=2.0))
    result = run(registry.build("ma_cross"), candles, config)
    data = json.loads(json.dumps(result.to_dict()))
    for key in ("total_return", "cagr", "max_drawdown", "sharpe", "sortino", "win_rate",
                "profit_factor", "exposure", "trade_count", "average_trade", "ambiguous_bars"):
        assert key in data["stats"]
    assert len(data["equity_curve"]) == 3000
    assert data["stats"]["trade_count"] == len(data["trades"]) > 0
    assert list(data["daily_returns"]) == ["2023-11-14", "2023-11-15", "2023-11-16"]
    assert list(data["monthly_returns"]) == ["2023-11"]
    growth = math.prod(1 + r for r in data["daily_returns"].values())
    assert growth == pytest.approx(1 + data["stats"]["total_return"])


def test_cagr_is_over_the_series_time_span_when_the_series_has_gaps():
    """Three daily candles a year apart (Upbit skips intervals without trades): the equity
    doubles over 731 days, so the CAGR is 2 ** (365 / 731) - 1, not a doubling in 3 days."""
    day = 86_400_000
    rows = [(100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 100.0, 100.0), (200.0,) * 4]
    candles = bars(rows, step_ms=365 * day)
    config = BacktestConfig(initial_cash=1000.0, risk=RiskParams(fee_rate=0.0), timeframe="1d")
    result = simulate(candles, Signals(actions=np.array([ENTER_LONG, HOLD, HOLD], np.int8)),
                      config)
    assert result.stats["final_equity"] == pytest.approx(2000.0)
    assert result.stats["cagr"] == pytest.approx(2 ** (365 / 731) - 1)  # 0.413


def test_cagr_of_a_contiguous_series_is_over_its_bars():
    rows = [(100.0, 100.0, 100.0, 100.0)] * 364 + [(200.0,) * 4]
    config = BacktestConfig(initial_cash=1000.0, risk=RiskParams(fee_rate=0.0), timeframe="1d")
    actions = np.full(365, HOLD, np.int8)
    actions[0] = ENTER_LONG
    result = simulate(bars(rows, step_ms=86_400_000), Signals(actions=actions), config)
    assert result.stats["cagr"] == pytest.approx(1.0)  # doubled in exactly 365 days


def test_bad_config_is_a_clear_error():
    with pytest.raises(ParamError, match="intrabar"):
        BacktestConfig(intrabar="random")
    with pytest.raises(ValueError, match="one per candle"):
        simulate(bars([FLAT, FLAT]), Signals(actions=np.zeros(3, dtype=np.int8)))


# ---------------------------------------------------------------------------- properties

returns = st.lists(st.floats(min_value=-0.08, max_value=0.08), min_size=5, max_size=120)
actions_st = st.lists(st.sampled_from([HOLD, HOLD, HOLD, ENTER_LONG, EXIT_LONG, ENTER_SHORT,
                                       EXIT_SHORT, ADD_LONG]), min_size=120, max_size=120)


@settings(max_examples=60, deadline=None)
@given(data=returns)
def test_no_trades_no_fees_leaves_equity_flat(data):
    candles = from_returns(data)
    result = simulate(candles, Signals(actions=np.zeros(len(candles), dtype=np.int8)),
                      BacktestConfig(risk=RiskParams(fee_rate=0.0, slippage_bps=0.0)))
    assert (result.equity == 1000.0 * 10).all()


@settings(max_examples=80, deadline=None)
@given(data=returns, acts=actions_st, stop=st.floats(0, 20), fee=st.floats(0, 0.002),
       slip=st.floats(0, 50))
def test_equity_never_negative_without_leverage(data, acts, stop, fee, slip):
    candles = from_returns(data)
    config = BacktestConfig(
        risk=RiskParams(fee_rate=fee, slippage_bps=slip, stop_loss_pct=stop), allow_short=False
    )
    result = simulate(candles, Signals(actions=np.array(acts[: len(candles)], dtype=np.int8)),
                      config)
    assert (result.equity >= -1e-9).all()


@settings(max_examples=80, deadline=None)
@given(data=returns, acts=actions_st, leverage=st.floats(1, 5), fee=st.floats(0, 0.002),
       slip=st.floats(0, 50), stop=st.floats(0, 10), target=st.floats(0, 10),
       trail=st.floats(0, 10))
def test_trade_pnl_adds_up_to_the_equity_change(data, acts, leverage, fee, slip, stop, target,
                                                trail):
    candles = from_returns(data)
    config = BacktestConfig(risk=RiskParams(
        fee_rate=fee, slippage_bps=slip, leverage=leverage, stop_loss_pct=stop,
        take_profit_pct=target, trailing_stop_pct=trail))
    sizes = np.full(len(candles), 0.5)
    result = simulate(
        candles, Signals(actions=np.array(acts[: len(candles)], dtype=np.int8), size=sizes),
        config,
    )
    total = sum(t.pnl for t in result.trades)
    assert total == pytest.approx(result.equity[-1] - config.initial_cash, abs=1e-6)
    assert all(t.entry_time_ms <= t.exit_time_ms for t in result.trades)


def test_atr_unit_sizing_uses_the_atr_known_at_the_decision():
    candles = random_walk(200, seed=3, vol=0.01)
    actions = np.zeros(200, dtype=np.int8)
    actions[100] = ENTER_LONG
    params = sizing.AtrUnit(risk_pct=1.0, atr_period=14)
    config = BacktestConfig(risk=RiskParams(fee_rate=0.0), sizing=params)
    result = simulate(candles, Signals(actions=actions), config)
    from strategies import indicators as ind

    atr = ind.atr(candles.high, candles.low, candles.close, 14)[100]
    expected = sizing.quantity(params, equity=10_000.0, price=candles.open[101], atr=atr)
    assert result.trades[0].size == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_kelly_sizing_uses_the_fallback_until_enough_trades(seed):
    candles = random_walk(300, seed=seed, vol=0.01, drift=0.001)
    actions = np.zeros(300, dtype=np.int8)
    actions[10::20] = ENTER_LONG
    actions[20::20] = EXIT_LONG
    params = sizing.Kelly(min_trades=5, fallback=0.1)
    config = BacktestConfig(risk=RiskParams(fee_rate=0.0), sizing=params)
    result = simulate(candles, Signals(actions=actions), config)
    first = result.trades[0]
    assert first.size * first.entry_price == pytest.approx(10_000.0 * 0.1)
    returns = [t.pnl / (t.entry_price * t.size) for t in result.trades[:5]]
    fraction = sizing.margin_fraction(params, returns)
    if fraction == 0:  # the first five trades show no edge: Kelly bets nothing
        assert len(result.trades) == 5
        return
    sixth = result.trades[5]
    equity_before = 10_000.0 + sum(t.pnl for t in result.trades[:5])
    assert sixth.size * sixth.entry_price == pytest.approx(equity_before * fraction)


def test_short_stop_and_target_mirror_the_long_ones():
    stopped = backtest(
        [FLAT, (100, 101, 99, 100), (101, 106, 100, 104)], [ENTER_SHORT, HOLD, HOLD],
        stop_loss_pct=5, take_profit_pct=10,
    )
    assert (stopped.trades[0].reason, stopped.trades[0].exit_price) == (
        "stop_loss", pytest.approx(105.0))
    assert stopped.trades[0].pnl == pytest.approx(-50)
    target = backtest(
        [FLAT, (100, 101, 99, 100), (95, 96, 88, 89)], [ENTER_SHORT, HOLD, HOLD],
        stop_loss_pct=5, take_profit_pct=10,
    )
    assert (target.trades[0].reason, target.trades[0].exit_price) == (
        "take_profit", pytest.approx(90.0))
    assert target.trades[0].pnl == pytest.approx(100)


def test_an_ambiguous_bar_without_its_minutes_falls_back_to_stop_first():
    step = 5 * MINUTE_MS
    rows = [FLAT, (100, 100.5, 99.5, 100), (100, 111, 94, 100)]
    other_bar = bars([(100, 111, 99, 110)], start_ms=DAY0_MS)  # minutes of another bar only
    result = backtest(rows, [ENTER_LONG, HOLD, HOLD], step_ms=step, minute_candles=other_bar,
                      stop_loss_pct=5, take_profit_pct=10)
    assert result.trades[0].reason == "stop_loss"
    assert result.stats["ambiguous_bars"] == 1
    assert result.stats["ambiguous_bars_replayed"] == 0
