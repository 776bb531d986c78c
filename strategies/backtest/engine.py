"""The backtest loop: event by event, bar by bar, one position at a time, compiled by numba
(:mod:`strategies._jit`). What it does on each bar, in order:

1. A new trading day starts its reference equity (and lifts the daily halt).
2. The previous bar's action is carried out at this bar's open:
   :func:`strategies.decisions.decide` (the decision the order services take too) says whether
   to close the position (``signal`` / ``reverse``) and which side to open or add to; an entry
   or add is sized (:func:`_unit_quantity` × the signal's size), capped to what the free equity
   affords, and skipped while the day is halted.
3. An open position is checked against its levels (:func:`strategies.trade_math.levels`) over the
   bar's open, high and low (:func:`strategies.trade_math.check_exit`); an ambiguous bar is
   replayed on its 1m candles when given. No exit: the trailing stop's best price moves.
4. The last bar closes what is still open (``end_of_data``).
5. The equity at the close is marked, and the daily limits checked.

Every close goes through :func:`_record_close`, one trade row in the loop's ``TradeBook``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from strategies._jit import njit
from strategies.backtest.inputs import (
    SIZE_ATR,
    SIZE_FIXED,
    SIZE_FRACTION,
    BacktestConfig,
    TradeBook,
    kernel_inputs,
    kernel_signature,
)
from strategies.backtest.results import BacktestResult
from strategies.backtest.statistics import summarize
from strategies.base import Candles, Signals, Strategy
from strategies.decisions import decide
from strategies.sizing import kelly_fraction
from strategies.trade_math import (
    DAILY_NONE,
    LONG,
    REASON_END,
    REASON_LIQUIDATION,
    REASON_NONE,
    affordable_quantity,
    average_entry,
    check_exit,
    daily_limit,
    levels,
    slipped_price,
    trading_day,
    trailing_price,
)

_kelly_fraction = njit(kelly_fraction)

# The Kelly tally of closed trades' returns (sizing with estimated win rate and payoff).
_WINS, _LOSSES, _WIN_SUM, _LOSS_SUM = 0, 1, 2, 3


@njit
def _record_close(
    book, k, tally, cash, side, qty, entry, margin, pos_fees, entry_time, entries, exit_time,
    price, reason, rules,
):
    """Close the whole position at trigger ``price`` (slipped, with the fee; a liquidation
    loses the margin and pays no fee) as trade ``k`` of ``book``, count it in the Kelly
    ``tally``; returns the new cash and ``k + 1`` (the trades in the book)."""
    if reason == REASON_LIQUIDATION:
        fill, fee_paid, pnl = price, 0.0, -margin
    else:
        fill = slipped_price(price, -side, rules.slippage_bps)
        fee_paid = abs(qty * fill) * rules.fee_rate
        pnl = side * qty * (fill - entry)
    net = pnl - pos_fees - fee_paid
    book.entry_time_ms[k] = entry_time
    book.exit_time_ms[k] = exit_time
    book.side[k] = side
    book.entry_price[k] = entry
    book.exit_price[k] = fill
    book.size[k] = qty
    book.fees[k] = pos_fees + fee_paid
    book.pnl[k] = net
    book.reason[k] = reason
    book.entries[k] = entries
    ret = net / (entry * qty) if entry * qty > 0.0 else 0.0
    if ret > 0.0:
        tally[_WINS] += 1.0
        tally[_WIN_SUM] += ret
    elif ret < 0.0:
        tally[_LOSSES] += 1.0
        tally[_LOSS_SUM] -= ret
    return cash + pnl - fee_paid, k + 1


@njit
def _unit_quantity(rules, equity, fill, atr, tally):
    """One unit's quantity at ``fill`` for ``equity`` (what :mod:`strategies.sizing` gives)."""
    if equity <= 0.0:
        return 0.0
    leverage = rules.leverage
    if rules.size_kind == SIZE_FRACTION:
        return equity * rules.size_a * leverage / fill
    if rules.size_kind == SIZE_FIXED:
        return min(rules.size_a, equity) * leverage / fill
    if rules.size_kind == SIZE_ATR:
        if atr > 0.0:
            return min(equity * rules.size_a / 100.0 / atr * leverage, equity * leverage / fill)
        return 0.0
    frac = rules.size_c
    wins, losses = tally[_WINS], tally[_LOSSES]
    if wins + losses >= rules.kelly_min_trades and wins > 0 and losses > 0:
        payoff = (tally[_WIN_SUM] / wins) / (tally[_LOSS_SUM] / losses)
        frac = _kelly_fraction(wins / (wins + losses), payoff) * rules.size_b
    return equity * frac * leverage / fill


@njit
def _new_book(capacity):
    """An empty :class:`TradeBook` with room for ``capacity`` trades."""
    return TradeBook(
        np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64),
        np.empty(capacity, dtype=np.int64), np.empty(capacity), np.empty(capacity),
        np.empty(capacity), np.empty(capacity), np.empty(capacity),
        np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64),
    )


@njit(aot=kernel_signature)
def simulate_bars(bars, minutes, rules):
    """The loop over ``bars``. Returns ``(equity, book, trades in the book, ambiguous bars,
    replayed bars, bars in market, halted days)``."""
    n = bars.open.shape[0]
    equity = np.empty(n)
    book = _new_book(n + 1)  # at most one close per bar, and the last bar's
    tally = np.zeros(4)
    n_trades = 0
    cash = rules.initial_cash
    side = 0
    qty = 0.0
    entry = 0.0
    margin = 0.0
    best = 0.0
    pos_fees = 0.0
    pos_entry_time = 0
    pos_entries = 0
    ambiguous = 0
    replayed = 0
    bars_in_market = 0
    halted_days = 0
    cur_day = -(2**62)
    day_start = cash
    halted = False
    mi = 0  # pointer into the 1m candles
    n_minutes = minutes.open_time.shape[0]

    for i in range(n):
        px_open = bars.open[i]
        day = trading_day(bars.open_time[i], rules.day_offset_hours)
        if day != cur_day:
            cur_day = day
            day_start = cash + (side * qty * (px_open - entry) if side != 0 else 0.0)
            halted = False

        if i > 0:
            close_reason, want, _ignored = decide(bars.action[i - 1], side, rules.allow_short)
            if close_reason != REASON_NONE:
                cash, n_trades = _record_close(
                    book, n_trades, tally, cash, side, qty, entry, margin, pos_fees,
                    pos_entry_time, pos_entries, bars.open_time[i], px_open, close_reason, rules,
                )
                side, qty, margin = 0, 0.0, 0.0
            mult = bars.size[i - 1]
            if want != 0 and not halted and mult > 0.0:
                fill = slipped_price(px_open, want, rules.slippage_bps)
                eq_now = cash + (side * qty * (fill - entry) if side != 0 else 0.0)
                want_qty = _unit_quantity(rules, eq_now, fill, bars.atr[i - 1], tally) * mult
                room = affordable_quantity(eq_now - margin, fill, rules.leverage, rules.fee_rate)
                add_qty = min(want_qty, room)
                if add_qty > 0.0 and math.isfinite(add_qty):
                    fee_paid = add_qty * fill * rules.fee_rate
                    cash -= fee_paid
                    if side == 0:
                        side = want
                        entry = fill
                        qty = add_qty
                        margin = add_qty * fill / rules.leverage
                        best = fill
                        pos_fees = fee_paid
                        pos_entry_time = bars.open_time[i]
                        pos_entries = 1
                    else:
                        entry = average_entry(qty, entry, add_qty, fill)
                        qty += add_qty
                        margin += add_qty * fill / rules.leverage
                        pos_fees += fee_paid
                        pos_entries += 1

        if side != 0:
            bars_in_market += 1
            stop, trail, liq, target = levels(
                side, qty, entry, margin, best, rules.stop_loss_pct, rules.take_profit_pct,
                rules.trailing_stop_pct, rules.leverage, rules.maintenance_margin_rate,
            )
            reason, level, amb = check_exit(
                side, px_open, bars.high[i], bars.low[i], stop, trail, liq, target,
                rules.adverse_first,
            )
            if amb:
                ambiguous += 1
                if n_minutes > 0:
                    while mi < n_minutes and minutes.open_time[mi] < bars.open_time[i]:
                        mi += 1
                    j = mi
                    m_best = best
                    found = False
                    while j < n_minutes and minutes.open_time[j] < bars.open_time[i] + rules.bar_ms:
                        m_trail = trailing_price(side, m_best, rules.trailing_stop_pct)
                        r2, l2, _a2 = check_exit(
                            side, minutes.open[j], minutes.high[j], minutes.low[j], stop,
                            m_trail, liq, target, True,
                        )
                        if r2 != REASON_NONE:
                            reason = r2
                            level = l2
                            found = True
                            break
                        if side == LONG:
                            m_best = max(m_best, minutes.high[j])
                        else:
                            m_best = min(m_best, minutes.low[j])
                        j += 1
                    if found:
                        replayed += 1
            if reason != REASON_NONE:
                cash, n_trades = _record_close(
                    book, n_trades, tally, cash, side, qty, entry, margin, pos_fees,
                    pos_entry_time, pos_entries, bars.open_time[i], level, reason, rules,
                )
                side, qty, margin = 0, 0.0, 0.0
            elif side == LONG:
                best = max(best, bars.high[i])
            else:
                best = min(best, bars.low[i])

        if i == n - 1 and side != 0:
            cash, n_trades = _record_close(
                book, n_trades, tally, cash, side, qty, entry, margin, pos_fees,
                pos_entry_time, pos_entries, bars.open_time[i], bars.close[i], REASON_END, rules,
            )
            side, qty, margin = 0, 0.0, 0.0

        eq = cash + (side * qty * (bars.close[i] - entry) if side != 0 else 0.0)
        equity[i] = eq
        limit_hit = daily_limit(
            day_start, eq, rules.daily_target_pct, rules.daily_max_loss_pct
        ) != DAILY_NONE
        if limit_hit and not halted:
            halted = True
            halted_days += 1

    return equity, book, n_trades, ambiguous, replayed, bars_in_market, halted_days


# ---------------------------------------------------------------------------- running


def simulate(
    candles: Candles,
    signals: Signals,
    config: BacktestConfig | None = None,
    *,
    minute_candles: Candles | None = None,
) -> BacktestResult:
    """Run the position engine over ``candles`` acting on precomputed ``signals``."""
    config = config or BacktestConfig()
    bars, minutes, rules = kernel_inputs(candles, signals, config, minute_candles)
    if len(candles) == 0:
        return summarize(candles, np.zeros(0), _new_book(0)._asdict(), config, rules.bar_ms)
    equity, book, k, ambiguous, replayed, in_market, halted_days = simulate_bars(
        bars, minutes, rules
    )
    columns = {name: column[:k] for name, column in book._asdict().items()}
    return summarize(
        candles, equity, columns, config, rules.bar_ms, ambiguous=ambiguous,
        replayed=replayed, in_market=in_market, halted_days=halted_days,
    )


def run(
    strategy: Strategy,
    candles: Candles,
    config: BacktestConfig | None = None,
    *,
    minute_candles: Candles | None = None,
    **signal_inputs: Any,
) -> BacktestResult:
    """Signals of ``strategy`` over the whole series, then :func:`simulate`.

    ``signal_inputs`` go to ``strategy.signals`` (for example ``peer_closes`` for
    ``dual_momentum``).
    """
    signals = strategy.signals(candles, **signal_inputs)
    return simulate(candles, signals, config, minute_candles=minute_candles)
