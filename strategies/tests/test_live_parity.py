"""A paper-trading-style loop (the newest action from ``signals(tail(lookback()))`` each bar,
the exit guard from :mod:`strategies.trade_math` per bar) reproduces the backtester's trades.

The loop below is written the way a broker runs: one closed candle at a time, no arrays of
the future. If it and the vectorized backtest ever disagree, one of them is wrong.
"""

from __future__ import annotations

import math

import pytest

from strategies import registry, trade_math
from strategies.backtest import BacktestConfig, run
from strategies.base import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from strategies.tests.conftest import random_walk
from strategies.trade_math import RiskParams


def paper_trade(strategy, candles, risk: RiskParams, cash: float):
    trades = []
    side, qty, entry, best, fees = 0, 0.0, 0.0, 0.0, 0.0
    lookback = strategy.lookback()

    def close(price, reason):
        nonlocal cash, side, qty, fees
        fill = trade_math.slipped_price(price, -side, risk.slippage_bps)
        fee = trade_math.fee(qty * fill, risk.fee_rate)
        pnl = trade_math.unrealized_pnl(side, qty, entry, fill)
        cash += pnl - fee
        trades.append((side, round(entry, 9), round(fill, 9), reason, pnl - fees - fee))
        side, qty, fees = 0, 0.0, 0.0

    for i in range(1, len(candles)):
        window = candles[max(0, i - lookback) : i]  # closed candles up to i - 1
        action = int(strategy.signals(window).actions[-1])
        price = float(candles.open[i])
        wanted = {ENTER_LONG: trade_math.LONG, ENTER_SHORT: trade_math.SHORT}.get(action, 0)
        exits = {EXIT_LONG: trade_math.LONG, EXIT_SHORT: trade_math.SHORT}.get(action, 0)
        if exits and side == exits:
            close(price, "signal")
        elif wanted and side == -wanted:
            close(price, "reverse")
        if wanted and side == 0:
            fill = trade_math.slipped_price(price, wanted, risk.slippage_bps)
            qty = trade_math.affordable_quantity(cash, fill, 1.0, risk.fee_rate)
            fees = trade_math.fee(qty * fill, risk.fee_rate)
            cash -= fees
            side, entry, best = wanted, fill, fill
        if side:
            levels = trade_math.exit_levels(risk, side=side, quantity=qty, entry_price=entry,
                                     margin=qty * entry, best_price=best)
            reason, level, _ = trade_math.check_exit(
                side, price, float(candles.high[i]), float(candles.low[i]), levels.stop,
                levels.trailing, levels.liquidation, levels.target, True,
            )
            if reason != trade_math.REASON_NONE:
                close(level, trade_math.REASON_NAMES[reason])
            else:
                best = (max(best, candles.high[i]) if side == trade_math.LONG
                        else min(best, candles.low[i]))
    if side:
        close(float(candles.close[-1]), "end_of_data")
    return trades, cash


@pytest.mark.parametrize("name", ["ma_cross", "bollinger", "rsi", "ensemble"])
def test_a_bar_by_bar_paper_loop_reproduces_the_backtest(name):
    candles = random_walk(1500, seed=17, vol=0.003)
    risk = RiskParams(fee_rate=0.0007, slippage_bps=3, stop_loss_pct=1.0, take_profit_pct=1.5,
                      trailing_stop_pct=0.8)
    strategy = registry.build(name)
    result = run(strategy, candles, BacktestConfig(initial_cash=5000.0, risk=risk))
    paper, final_cash = paper_trade(strategy, candles, risk, 5000.0)
    expected = [
        (1 if t.side == "long" else -1, round(t.entry_price, 9), round(t.exit_price, 9),
         t.reason, t.pnl)
        for t in result.trades
    ]
    assert len(paper) == len(expected) > 0
    for got, want in zip(paper, expected):
        assert got[:4] == want[:4]
        assert math.isclose(got[4], want[4], rel_tol=1e-9, abs_tol=1e-9)
    assert final_cash == pytest.approx(result.equity[-1], rel=1e-12)
