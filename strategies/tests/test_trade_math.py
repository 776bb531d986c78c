"""The pure position math the brokers call per price event and the backtester per bar."""

from __future__ import annotations

import math

import pytest

from strategies import trade_math
from strategies.params import ParamError


def test_fees_are_a_fraction_of_notional_either_way():
    assert trade_math.fee(-2_000.0, 0.0005) == pytest.approx(1.0)
    assert trade_math.fee(2_000.0, 0.0005) == pytest.approx(1.0)


def test_slippage_makes_buys_dearer_and_sells_cheaper():
    assert trade_math.slipped_price(100.0, trade_math.BUY, 5) == pytest.approx(100.05)
    assert trade_math.slipped_price(100.0, trade_math.SELL, 5) == pytest.approx(99.95)


def test_levels_are_percent_of_entry_and_nan_when_off():
    assert trade_math.stop_price(trade_math.LONG, 200.0, 5) == pytest.approx(190.0)
    assert trade_math.stop_price(trade_math.SHORT, 200.0, 5) == pytest.approx(210.0)
    assert trade_math.target_price(trade_math.LONG, 200.0, 10) == pytest.approx(220.0)
    assert trade_math.target_price(trade_math.SHORT, 200.0, 10) == pytest.approx(180.0)
    assert trade_math.trailing_price(trade_math.LONG, 250.0, 4) == pytest.approx(240.0)
    assert trade_math.trailing_price(trade_math.SHORT, 150.0, 4) == pytest.approx(156.0)
    assert math.isnan(trade_math.stop_price(trade_math.LONG, 200.0, 0))
    assert math.isnan(trade_math.target_price(trade_math.LONG, 200.0, 0))
    assert math.isnan(trade_math.trailing_price(trade_math.LONG, 200.0, 0))


def test_isolated_liquidation_price_matches_the_margin_loss():
    qty, entry, leverage, mmr = 2.0, 100.0, 10.0, 0.005
    margin = qty * entry / leverage
    long_liq = trade_math.liquidation_price(trade_math.LONG, qty, entry, margin, mmr)
    short_liq = trade_math.liquidation_price(trade_math.SHORT, qty, entry, margin, mmr)
    # At the liquidation price the loss equals margin minus the maintenance margin.
    assert qty * (entry - long_liq) == pytest.approx(margin - mmr * qty * long_liq)
    assert qty * (short_liq - entry) == pytest.approx(margin - mmr * qty * short_liq)
    assert long_liq == pytest.approx(100 * 0.9 / 0.995)
    # 1x long: no liquidation
    assert trade_math.liquidation_price(trade_math.LONG, qty, entry, qty * entry, mmr) == 0.0


def test_a_single_price_event_triggers_the_stop_for_a_broker():
    stop = trade_math.stop_price(trade_math.LONG, 100.0, 2)
    nan = math.nan
    assert trade_math.check_exit(trade_math.LONG, 97.5, 97.5, 97.5, stop, nan, nan, nan, True) == (
        trade_math.REASON_STOP, 97.5, False)  # the price is beyond the level: fill at the price
    assert trade_math.check_exit(
        trade_math.LONG, 98.5, 98.5, 98.5, stop, nan, nan, nan, True)[0] == trade_math.REASON_NONE


def test_liquidation_comes_before_the_stop_when_both_are_gapped():
    reason, level, ambiguous = trade_math.check_exit(
        trade_math.LONG, 80.0, 85.0, 79.0, 95.0, math.nan, 90.0, 120.0, True
    )
    assert (reason, level, ambiguous) == (trade_math.REASON_LIQUIDATION, 80.0, False)


def test_the_nearest_adverse_level_wins_for_a_short():
    # Stop at 105, trailing at 103: the trailing stop is hit first as price rises.
    reason, level, _ = trade_math.check_exit(
        trade_math.SHORT, 100.0, 104.0, 99.0, 105.0, 103.0, math.nan, math.nan, True
    )
    assert (reason, level) == (trade_math.REASON_TRAILING, 103.0)


def test_a_bar_touching_both_levels_is_ambiguous_and_honours_the_policy():
    args = (trade_math.LONG, 100.0, 111.0, 94.0, 95.0, math.nan, math.nan, 110.0)
    assert trade_math.check_exit(*args, True) == (trade_math.REASON_STOP, 95.0, True)
    assert trade_math.check_exit(*args, False) == (trade_math.REASON_TARGET, 110.0, True)


def test_trading_day_follows_the_utc_offset():
    # 2023-11-14 15:00 UTC is 2023-11-15 00:00 in Seoul (UTC+9).
    ts = 1_699_974_000_000
    assert trade_math.trading_day(ts, 9.0) == trade_math.trading_day(ts - 1, 9.0) + 1
    assert trade_math.trading_day(ts, 0.0) == trade_math.trading_day(ts - 1, 0.0)


def test_daily_limit_reports_target_and_max_loss_and_off_when_zero():
    assert trade_math.daily_limit(1000.0, 1050.0, 5.0, 3.0) == trade_math.DAILY_TARGET
    assert trade_math.daily_limit(1000.0, 970.0, 5.0, 3.0) == trade_math.DAILY_MAX_LOSS
    assert trade_math.daily_limit(1000.0, 1049.0, 5.0, 3.0) == trade_math.DAILY_NONE
    assert trade_math.daily_limit(1000.0, 2000.0, 0.0, 0.0) == trade_math.DAILY_NONE


def test_affordable_quantity_keeps_margin_plus_fee_within_the_cash():
    qty = trade_math.affordable_quantity(1000.0, 50.0, 5.0, 0.001)
    assert qty * 50.0 / 5.0 + qty * 50.0 * 0.001 == pytest.approx(1000.0)
    assert trade_math.affordable_quantity(-1.0, 50.0, 1.0, 0.0) == 0.0


def test_risk_params_reject_a_maintenance_rate_that_liquidates_at_entry():
    with pytest.raises(ParamError, match="maintenance_margin_rate"):
        trade_math.RiskParams(leverage=50, maintenance_margin_rate=0.05)
    with pytest.raises(ParamError, match="leverage"):
        trade_math.RiskParams.from_dict({"leverage": 0.5})


def test_exit_levels_give_a_broker_the_backtesters_levels():
    risk = trade_math.RiskParams(leverage=5, stop_loss_pct=2, take_profit_pct=6,
                                 trailing_stop_pct=3)
    levels = trade_math.exit_levels(risk, side=trade_math.LONG, quantity=1.0, entry_price=100.0,
                                    margin=20.0, best_price=110.0)
    assert levels.stop == pytest.approx(98.0)
    assert levels.target == pytest.approx(106.0)
    assert levels.trailing == pytest.approx(106.7)
    assert levels.liquidation == pytest.approx((100 - 20) / 0.995)
    reason, price, _ = trade_math.check_exit(trade_math.LONG, 106.5, 106.5, 106.5, levels.stop,
                                      levels.trailing, levels.liquidation, levels.target, True)
    assert (reason, price) == (trade_math.REASON_TRAILING, 106.5)
    spot = trade_math.exit_levels(trade_math.RiskParams(), side=trade_math.LONG, quantity=1.0,
                                  entry_price=100.0, margin=100.0, best_price=100.0)
    assert math.isnan(spot.stop) and math.isnan(spot.liquidation)
