"""The backtester: any registered strategy, any parameters, over one ``Candles`` series.

It runs event by event, bar by bar, with the same position math the paper and live brokers use
(:mod:`strategies.position`, :mod:`strategies.sizing`). What it assumes, plainly:

Fill timing
    The strategy decides on the close of bar ``i`` using bars ``[0, i]``; the order fills at the
    **open of bar i + 1** (market order), moved against the trader by ``slippage_bps``. A signal on
    the last bar is not filled. Nothing fills at a price the bar did not offer except through
    slippage.
Fees
    ``fee_rate`` (taker) times the fill's notional (quantity × fill price), on every fill: entries,
    adds, signal exits, stops, targets, trailing stops and the final close. A liquidation pays
    no fee but loses the position's whole isolated margin.
Sizing
    Without a sizing method the whole equity is committed (``fraction`` 1.0), no leverage. The
    quantity from :func:`strategies.sizing.quantity` (equity marked at the fill price) is scaled
    by the signal's ``size`` (1.0 = one unit; pyramiding strategies send 0.5, 1.5, ...) and then
    capped so that margin plus the entry fee fit in the equity not yet used as margin. A size of
    0 or NaN places no order. Sizes are not rounded to a venue's step (brokers do that with
    Decimal), and there is no minimum order value.
Positions
    One position at a time per run, long or short. ``ENTER_*`` while flat opens; ``ENTER_*`` of
    the other side closes (reason ``reverse``) and opens at the same open; ``ENTER_*`` of the same
    side is ignored; ``ADD_*`` adds to a position of that side (new average entry; stops and
    targets follow the average entry; margin adds up). ``EXIT_*`` closes the whole position.
    With ``allow_short=False`` an ``ENTER_SHORT`` only closes a long and ``ADD_SHORT`` is ignored.
    After a stop or target the engine waits for the strategy's next entry signal.
Exits inside a bar
    Stop-loss, take-profit and trailing stop are percentages of the (average) entry price and are
    checked against each bar's open, high and low, from the bar of the entry fill on. A bar that
    opens beyond a level fills at the open (a gap). When one bar touches both the adverse level
    and the target the order is unknown: by default the stop is taken first (pessimistic,
    ``intrabar="stop_first"``; ``"target_first"`` is the optimistic alternative); when 1m candles
    are given, such a bar is replayed minute by minute instead (stop first again inside a minute
    that touches both). Every such bar is counted in ``stats["ambiguous_bars"]``. The trailing
    stop trails the best high (long) or low (short) of the **previous** bars and the entry price,
    so a bar's own extreme only moves it from the next bar on (1m replay moves it per minute).
Leverage
    Isolated margin; the liquidation price uses ``maintenance_margin_rate``
    (:func:`strategies.position.liquidation_price`) and is checked like a stop, before it.
Daily limits
    Trading days start at 00:00 UTC + ``day_offset_hours``. The day's reference is the equity at
    the open of its first bar. Once the equity at a bar's close has gained ``daily_target_pct`` or
    lost ``daily_max_loss_pct``, no new entries or adds are filled for the rest of that day (open
    positions keep their exits).
End of data
    A position still open after the last bar is closed at the last close (with slippage and
    fee), reason ``end_of_data``, so the sum of trade PnL equals final minus initial equity.
Statistics
    Sharpe and Sortino use per-bar simple returns of the equity curve, risk-free rate 0,
    annualized with ``sqrt(bars per year)`` (365-day crypto year). CAGR uses the span of the
    series. Daily and monthly returns use the trading day (the same UTC offset).

Pure: numpy, the standard library and, when installed, numba for the loop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import numpy as np

from markets.timeframes import timeframe_ms
from strategies import indicators, position, sizing
from strategies._jit import njit
from strategies.base import (
    ADD_LONG,
    ADD_SHORT,
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    Candles,
    Signals,
    Strategy,
)
from strategies.params import ParamError, Params
from strategies.position import (
    DAILY_NONE,
    DAY_MS,
    LONG,
    REASON_END,
    REASON_LIQUIDATION,
    REASON_NAMES,
    REASON_NONE,
    REASON_REVERSE,
    REASON_SIGNAL,
    SHORT,
    RiskParams,
    affordable_quantity,
    average_entry,
    check_exit,
    daily_limit,
    liquidation_price,
    slipped_price,
    stop_price,
    target_price,
    trading_day,
    trailing_price,
)
from strategies.sizing import kelly_fraction

_kelly_fraction = njit(kelly_fraction)

YEAR_MS = 365 * position.DAY_MS
INTRABAR_POLICIES = ("stop_first", "target_first")

# Sizing kinds understood by the loop (mirrors strategies.sizing.quantity).
_SIZE_FRACTION = 0
_SIZE_FIXED = 1
_SIZE_ATR = 2
_SIZE_KELLY_ESTIMATED = 3


@dataclasses.dataclass(frozen=True)
class BacktestConfig:
    """Everything around the strategy: money, risk rules, sizing, intrabar policy."""

    initial_cash: float = 10_000.0
    risk: RiskParams = dataclasses.field(default_factory=RiskParams)
    #: A :mod:`strategies.sizing` parameter object; None commits the whole equity.
    sizing: Params | None = None
    allow_short: bool = True
    intrabar: str = "stop_first"
    #: Timeframe of the candles ("1m".."1d"); None infers it from the open times.
    timeframe: str | None = None

    def __post_init__(self) -> None:
        if not (self.initial_cash > 0 and math.isfinite(self.initial_cash)):
            raise ParamError(f"initial_cash must be a positive amount; got {self.initial_cash}")
        if self.intrabar not in INTRABAR_POLICIES:
            raise ParamError(
                f"intrabar must be one of {', '.join(INTRABAR_POLICIES)}; got {self.intrabar!r}"
            )
        if self.sizing is not None and type(self.sizing) not in sizing.METHODS.values():
            raise ParamError(
                f"sizing must be one of the strategies.sizing methods; got {self.sizing!r}"
            )


@dataclasses.dataclass(slots=True)
class Trade:
    """One round trip (entries and adds merged), JSON-ready through ``dataclasses.asdict``.

    Times are the open times (ms UTC) of the candles in which the entry and the exit filled;
    ``entry_price`` is the average entry, ``size`` the total quantity (base currency), ``fees``
    all fees paid in quote currency, ``pnl`` net of fees, ``entries`` 1 + the number of adds.
    """

    entry_time_ms: int
    exit_time_ms: int
    side: str
    entry_price: float
    exit_price: float
    size: float
    fees: float
    pnl: float
    reason: str
    entries: int


_TRADE_COLUMNS = (
    "entry_time_ms", "exit_time_ms", "side", "entry_price", "exit_price", "size", "fees", "pnl",
    "reason", "entries",
)


class BacktestResult:
    """What a run produced. ``trades`` are built on first access from ``trade_columns`` (numpy
    arrays, one per :class:`Trade` field, ``side`` as +1/-1 and ``reason`` as a code), so a run
    with tens of thousands of trades does not pay for objects nobody reads."""

    def __init__(
        self,
        trade_columns: dict[str, np.ndarray],
        open_time_ms: np.ndarray,
        equity: np.ndarray,
        stats: dict[str, Any],
        daily_returns: dict[str, float],
        monthly_returns: dict[str, float],
    ) -> None:
        self.trade_columns = trade_columns
        self.open_time_ms = open_time_ms
        self.equity = equity
        self.stats = stats
        self.daily_returns = daily_returns
        self.monthly_returns = monthly_returns
        self._trades: list[Trade] | None = None

    @property
    def trades(self) -> list[Trade]:
        if self._trades is None:
            cols = [self.trade_columns[name].tolist() for name in _TRADE_COLUMNS]
            self._trades = [
                Trade(e0, e1, "long" if sd == LONG else "short", p0, p1, q, f, pnl,
                      REASON_NAMES[r], m)
                for e0, e1, sd, p0, p1, q, f, pnl, r, m in zip(*cols)
            ]
        return self._trades

    def trade_dicts(self) -> list[dict[str, Any]]:
        """The trades as JSON-ready dicts (``dataclasses.asdict`` of each :class:`Trade`), built
        straight from the columns: no ``Trade`` objects kept, no deep copies."""
        cols = [self.trade_columns[name].tolist() for name in _TRADE_COLUMNS]
        cols[2] = ["long" if sd == LONG else "short" for sd in cols[2]]
        cols[8] = [REASON_NAMES[r] for r in cols[8]]
        return [dict(zip(_TRADE_COLUMNS, row)) for row in zip(*cols)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; the equity curve as ``[[open_time_ms, equity], ...]``."""
        return {
            "stats": self.stats,
            "trades": self.trade_dicts(),
            "equity_curve": [
                [t, e] for t, e in zip(self.open_time_ms.tolist(), self.equity.tolist())
            ],
            "daily_returns": self.daily_returns,
            "monthly_returns": self.monthly_returns,
        }


# ---------------------------------------------------------------------------- the loop


@njit
def _close(
    side, qty, entry, margin, price, reason, fee_rate, slip_bps, cash,
):
    """Close the whole position at trigger ``price``: (new cash, fill price, fee, pnl)."""
    if reason == REASON_LIQUIDATION:
        return cash - margin, price, 0.0, -margin
    fill = slipped_price(price, -side, slip_bps)
    fee_paid = abs(qty * fill) * fee_rate
    pnl = side * qty * (fill - entry)
    return cash + pnl - fee_paid, fill, fee_paid, pnl


_SIMULATE_SIGNATURE = (
    "Tuple((f8[:], i8, i8[:], i8[:], i8[:], f8[:], f8[:], f8[:], f8[:], f8[:], i8[:], i8[:], i8,"
    " i8, i8, i8))(i8[:], f8[:], f8[:], f8[:], f8[:], i8[:], f8[:], f8[:], f8, f8, f8, f8, f8, f8,"
    " f8, f8, f8, f8, f8, b1, b1, i8, f8, f8, f8, i8, i8[:], f8[:], f8[:], f8[:], i8)"
)


@njit(aot=_SIMULATE_SIGNATURE)
def _simulate(
    open_time, o, h, lo, c, actions, size, atr_values,
    cash0, fee_rate, slip_bps, leverage, mmr, sl_pct, tp_pct, trail_pct,
    daily_target_pct, daily_loss_pct, day_offset_hours, allow_short, adverse_first,
    size_kind, size_a, size_b, size_c, kelly_min_trades,
    m_time, m_o, m_h, m_lo, bar_ms,
):
    n = o.shape[0]
    equity = np.empty(n)
    cap = n + 1
    t_entry = np.empty(cap, dtype=np.int64)
    t_exit = np.empty(cap, dtype=np.int64)
    t_side = np.empty(cap, dtype=np.int64)
    t_entry_px = np.empty(cap)
    t_exit_px = np.empty(cap)
    t_qty = np.empty(cap)
    t_fees = np.empty(cap)
    t_pnl = np.empty(cap)
    t_reason = np.empty(cap, dtype=np.int64)
    t_entries = np.empty(cap, dtype=np.int64)
    n_trades = 0

    cash = cash0
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
    day_start = cash0
    halted = False
    # Running statistics of closed trades for Kelly sizing with estimated W and R.
    wins = 0
    losses = 0
    win_sum = 0.0
    loss_sum = 0.0
    mi = 0  # pointer into the 1m candles
    n_minutes = m_time.shape[0]

    for i in range(n):
        px_open = o[i]
        day = trading_day(open_time[i], day_offset_hours)
        if day != cur_day:
            cur_day = day
            day_start = cash + (side * qty * (px_open - entry) if side != 0 else 0.0)
            halted = False

        if i > 0:
            act = actions[i - 1]
            mult = size[i - 1]
            if not allow_short:
                if act == ENTER_SHORT:
                    act = EXIT_LONG
                elif act == ADD_SHORT:
                    act = 0
            want = 0  # side to open or add to
            close_reason = REASON_NONE
            if (act == EXIT_LONG and side == LONG) or (act == EXIT_SHORT and side == SHORT):
                close_reason = REASON_SIGNAL
            elif act == ENTER_LONG:
                if side == SHORT:
                    close_reason = REASON_REVERSE
                if side != LONG:
                    want = LONG
            elif act == ENTER_SHORT:
                if side == LONG:
                    close_reason = REASON_REVERSE
                if side != SHORT:
                    want = SHORT
            elif act == ADD_LONG and side == LONG:
                want = LONG
            elif act == ADD_SHORT and side == SHORT:
                want = SHORT
            if close_reason != REASON_NONE:
                cash, fill, fee_paid, pnl = _close(
                    side, qty, entry, margin, px_open, close_reason, fee_rate, slip_bps, cash
                )
                t_entry[n_trades] = pos_entry_time
                t_exit[n_trades] = open_time[i]
                t_side[n_trades] = side
                t_entry_px[n_trades] = entry
                t_exit_px[n_trades] = fill
                t_qty[n_trades] = qty
                t_fees[n_trades] = pos_fees + fee_paid
                t_pnl[n_trades] = pnl - pos_fees - fee_paid
                t_reason[n_trades] = close_reason
                t_entries[n_trades] = pos_entries
                ret = t_pnl[n_trades] / (entry * qty) if entry * qty > 0.0 else 0.0
                if ret > 0.0:
                    wins += 1
                    win_sum += ret
                elif ret < 0.0:
                    losses += 1
                    loss_sum -= ret
                n_trades += 1
                side = 0
                qty = 0.0
                margin = 0.0
            if want != 0 and not halted and mult > 0.0:
                fill = slipped_price(px_open, want, slip_bps)
                eq_now = cash + (side * qty * (fill - entry) if side != 0 else 0.0)
                base = 0.0
                if eq_now > 0.0:
                    if size_kind == _SIZE_FRACTION:
                        base = eq_now * size_a * leverage / fill
                    elif size_kind == _SIZE_FIXED:
                        base = min(size_a, eq_now) * leverage / fill
                    elif size_kind == _SIZE_ATR:
                        a = atr_values[i - 1]
                        if a > 0.0:
                            base = min(eq_now * size_a / 100.0 / a * leverage,
                                       eq_now * leverage / fill)
                    else:
                        frac = size_c
                        if wins + losses >= kelly_min_trades and wins > 0 and losses > 0:
                            w_rate = wins / (wins + losses)
                            payoff = (win_sum / wins) / (loss_sum / losses)
                            frac = _kelly_fraction(w_rate, payoff) * size_b
                        base = eq_now * frac * leverage / fill
                want_qty = base * mult
                room = affordable_quantity(eq_now - margin, fill, leverage, fee_rate)
                add_qty = min(want_qty, room)
                if add_qty > 0.0 and math.isfinite(add_qty):
                    fee_paid = add_qty * fill * fee_rate
                    cash -= fee_paid
                    if side == 0:
                        side = want
                        entry = fill
                        qty = add_qty
                        margin = add_qty * fill / leverage
                        best = fill
                        pos_fees = fee_paid
                        pos_entry_time = open_time[i]
                        pos_entries = 1
                    else:
                        entry = average_entry(qty, entry, add_qty, fill)
                        qty += add_qty
                        margin += add_qty * fill / leverage
                        pos_fees += fee_paid
                        pos_entries += 1

        if side != 0:
            bars_in_market += 1
            stop = stop_price(side, entry, sl_pct)
            target = target_price(side, entry, tp_pct)
            liq = np.nan
            if leverage > 1.0 or side == SHORT:
                liq = liquidation_price(side, qty, entry, margin, mmr)
            trail = trailing_price(side, best, trail_pct)
            reason, level, amb = check_exit(
                side, px_open, h[i], lo[i], stop, trail, liq, target, adverse_first
            )
            if amb:
                ambiguous += 1
                if n_minutes > 0:
                    while mi < n_minutes and m_time[mi] < open_time[i]:
                        mi += 1
                    j = mi
                    m_best = best
                    found = False
                    while j < n_minutes and m_time[j] < open_time[i] + bar_ms:
                        m_trail = trailing_price(side, m_best, trail_pct)
                        r2, l2, _a2 = check_exit(
                            side, m_o[j], m_h[j], m_lo[j], stop, m_trail, liq, target, True
                        )
                        if r2 != REASON_NONE:
                            reason = r2
                            level = l2
                            found = True
                            break
                        if side == LONG:
                            m_best = max(m_best, m_h[j])
                        else:
                            m_best = min(m_best, m_lo[j])
                        j += 1
                    if found:
                        replayed += 1
            if reason != REASON_NONE:
                cash, fill, fee_paid, pnl = _close(
                    side, qty, entry, margin, level, reason, fee_rate, slip_bps, cash
                )
                t_entry[n_trades] = pos_entry_time
                t_exit[n_trades] = open_time[i]
                t_side[n_trades] = side
                t_entry_px[n_trades] = entry
                t_exit_px[n_trades] = fill
                t_qty[n_trades] = qty
                t_fees[n_trades] = pos_fees + fee_paid
                t_pnl[n_trades] = pnl - pos_fees - fee_paid
                t_reason[n_trades] = reason
                t_entries[n_trades] = pos_entries
                ret = t_pnl[n_trades] / (entry * qty) if entry * qty > 0.0 else 0.0
                if ret > 0.0:
                    wins += 1
                    win_sum += ret
                elif ret < 0.0:
                    losses += 1
                    loss_sum -= ret
                n_trades += 1
                side = 0
                qty = 0.0
                margin = 0.0
            elif side == LONG:
                best = max(best, h[i])
            else:
                best = min(best, lo[i])

        if i == n - 1 and side != 0:
            cash, fill, fee_paid, pnl = _close(
                side, qty, entry, margin, c[i], REASON_END, fee_rate, slip_bps, cash
            )
            t_entry[n_trades] = pos_entry_time
            t_exit[n_trades] = open_time[i]
            t_side[n_trades] = side
            t_entry_px[n_trades] = entry
            t_exit_px[n_trades] = fill
            t_qty[n_trades] = qty
            t_fees[n_trades] = pos_fees + fee_paid
            t_pnl[n_trades] = pnl - pos_fees - fee_paid
            t_reason[n_trades] = REASON_END
            t_entries[n_trades] = pos_entries
            n_trades += 1
            side = 0
            qty = 0.0
            margin = 0.0

        eq = cash + (side * qty * (c[i] - entry) if side != 0 else 0.0)
        equity[i] = eq
        limit_hit = daily_limit(day_start, eq, daily_target_pct, daily_loss_pct) != DAILY_NONE
        if limit_hit and not halted:
            halted = True
            halted_days += 1

    return (
        equity, n_trades, t_entry, t_exit, t_side, t_entry_px, t_exit_px, t_qty, t_fees,
        t_pnl, t_reason, t_entries, ambiguous, replayed, bars_in_market, halted_days,
    )


# ---------------------------------------------------------------------------- running


def _bar_ms(candles: Candles, timeframe: str | None) -> int:
    if timeframe is not None:
        return timeframe_ms(timeframe)
    if len(candles) < 2:
        return 60_000
    steps = np.diff(candles.open_time_ms)
    steps = steps[steps > 0]
    return int(steps.min()) if steps.size else 60_000


def _sizing_args(config: BacktestConfig, candles: Candles) -> tuple:
    """(kind, a, b, c, kelly_min_trades, atr array) for the loop."""
    params = config.sizing
    no_atr = np.zeros(0)
    if params is None:
        return _SIZE_FRACTION, 1.0, 0.0, 0.0, 0, no_atr
    if isinstance(params, sizing.FixedQuote):
        return _SIZE_FIXED, params.amount, 0.0, 0.0, 0, no_atr
    if isinstance(params, sizing.AtrUnit):
        atr = indicators.atr(candles.high, candles.low, candles.close, params.atr_period)
        return _SIZE_ATR, params.risk_pct, 0.0, 0.0, 0, atr
    if isinstance(params, sizing.Kelly) and params.win_rate == 0:
        return (
            _SIZE_KELLY_ESTIMATED, 0.0, params.fraction, params.fallback, params.min_trades, no_atr
        )
    return _SIZE_FRACTION, float(sizing.margin_fraction(params)), 0.0, 0.0, 0, no_atr


def simulate(
    candles: Candles,
    signals: Signals,
    config: BacktestConfig | None = None,
    *,
    minute_candles: Candles | None = None,
) -> BacktestResult:
    """Run the position engine over ``candles`` acting on precomputed ``signals``."""
    config = config or BacktestConfig()
    n = len(candles)
    actions = np.asarray(signals.actions, dtype=np.int64)
    if actions.shape[0] != n:
        raise ValueError(
            f"signals have {actions.shape[0]} actions for {n} candles; need one per candle"
        )
    if signals.size is None:
        size = np.ones(n)
    else:
        size = np.nan_to_num(np.asarray(signals.size, dtype=np.float64), nan=0.0)
    risk = config.risk
    kind, a, b, cc, kmin, atr = _sizing_args(config, candles)
    if atr.shape[0] == 0:
        atr = np.zeros(n)
    bar_ms = _bar_ms(candles, config.timeframe)
    if minute_candles is not None and len(minute_candles):
        mt, mo, mh, ml = (
            np.asarray(minute_candles.open_time_ms, dtype=np.int64),
            minute_candles.open, minute_candles.high, minute_candles.low,
        )
    else:
        mt, mo, mh, ml = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0)
    if n == 0:
        empty = {name: np.zeros(0) for name in _TRADE_COLUMNS}
        return _result(candles, np.zeros(0), empty, config, bar_ms, 0, 0, 0, 0)
    out = _simulate(
        np.asarray(candles.open_time_ms, dtype=np.int64),
        np.asarray(candles.open, dtype=np.float64),
        np.asarray(candles.high, dtype=np.float64),
        np.asarray(candles.low, dtype=np.float64),
        np.asarray(candles.close, dtype=np.float64),
        actions, size, atr,
        float(config.initial_cash), risk.fee_rate, risk.slippage_bps, risk.leverage,
        risk.maintenance_margin_rate, risk.stop_loss_pct, risk.take_profit_pct,
        risk.trailing_stop_pct, risk.daily_target_pct, risk.daily_max_loss_pct,
        risk.day_offset_hours, config.allow_short, config.intrabar == "stop_first",
        kind, float(a), float(b), float(cc), int(kmin),
        mt, np.asarray(mo, dtype=np.float64), np.asarray(mh, dtype=np.float64),
        np.asarray(ml, dtype=np.float64), bar_ms,
    )
    (equity, n_trades, t_entry, t_exit, t_side, t_entry_px, t_exit_px, t_qty, t_fees, t_pnl,
     t_reason, t_entries, ambiguous, replayed, in_market, halted_days) = out
    k = n_trades
    columns = dict(zip(_TRADE_COLUMNS, (
        t_entry[:k], t_exit[:k], t_side[:k], t_entry_px[:k], t_exit_px[:k], t_qty[:k],
        t_fees[:k], t_pnl[:k], t_reason[:k], t_entries[:k],
    )))
    return _result(candles, equity, columns, config, bar_ms, ambiguous, replayed, in_market,
                   halted_days)


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


# ---------------------------------------------------------------------------- statistics


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _period_returns(
    equity: np.ndarray, initial: float, keys: np.ndarray, names: list[str]
) -> dict[str, float]:
    """Return of each period: its last equity over the previous period's last (or initial)."""
    if equity.size == 0:
        return {}
    ends = np.append(np.flatnonzero(np.diff(keys) != 0), keys.size - 1)
    closing = equity[ends]
    opening = np.concatenate(([initial], closing[:-1]))
    returns = (closing / opening - 1.0).tolist()
    return {names[j]: r for j, r in enumerate(returns)}


@njit(aot="Tuple((f8, f8, f8, f8, i8[:]))(f8[:], f8, i8[:], i8)")
def _curve_stats(equity, initial, times, offset_ms):
    """One pass over the equity curve: per-bar return moments, max drawdown, day ends."""
    n = equity.shape[0]
    total = 0.0
    total_sq = 0.0
    down_sq = 0.0
    peak = initial
    max_dd = 0.0
    prev = initial
    day_ends = np.empty(n, dtype=np.int64)
    n_days = 0
    for i in range(n):
        e = equity[i]
        r = e / prev - 1.0 if prev > 0.0 else 0.0
        total += r
        total_sq += r * r
        if r < 0.0:
            down_sq += r * r
        prev = e
        if e > peak:
            peak = e
        if peak > 0.0 and 1.0 - e / peak > max_dd:
            max_dd = 1.0 - e / peak
        if i == n - 1 or (times[i + 1] + offset_ms) // DAY_MS != (times[i] + offset_ms) // DAY_MS:
            day_ends[n_days] = i
            n_days += 1
    mean = total / n
    var = total_sq / n - mean * mean
    return mean, math.sqrt(var) if var > 0.0 else 0.0, math.sqrt(down_sq / n), max_dd, \
        day_ends[:n_days]


def _result(
    candles: Candles,
    equity: np.ndarray,
    columns: dict[str, np.ndarray],
    config: BacktestConfig,
    bar_ms: int,
    ambiguous: int,
    replayed: int,
    in_market: int,
    halted_days: int,
) -> BacktestResult:
    initial = float(config.initial_cash)
    n = equity.size
    times = np.asarray(candles.open_time_ms, dtype=np.int64)
    final = float(equity[-1]) if n else initial
    bars_per_year = YEAR_MS / bar_ms
    offset_ms = int(config.risk.day_offset_hours * position.HOUR_MS)
    if n:
        mean, std, downside, max_dd, day_ends = _curve_stats(equity, initial, times, offset_ms)
        sharpe = mean / std * math.sqrt(bars_per_year) if std > 0 else 0.0
        sortino = mean / downside * math.sqrt(bars_per_year) if downside > 0 else 0.0
        # The series' time span, not bars x bar length: venues skip intervals with no trades.
        years = (int(times[-1]) - int(times[0]) + bar_ms) / YEAR_MS
        if final > 0 and years > 0:
            growth = math.log(final / initial) / years
            cagr = math.expm1(growth) if growth < 700 else math.inf  # inf is reported as None
        else:
            cagr = -1.0
    else:
        max_dd = sharpe = sortino = cagr = 0.0
        day_ends = np.zeros(0, dtype=np.int64)
    pnls = columns["pnl"]
    gross_win = float(pnls[pnls > 0].sum())
    gross_loss = float(-pnls[pnls < 0].sum())
    epoch = dt.date(1970, 1, 1)
    day_numbers = ((times[day_ends] + offset_ms) // position.DAY_MS).tolist()
    days = [epoch + dt.timedelta(days=k) for k in day_numbers]
    day_equity = equity[day_ends]
    month_keys = np.array([d.year * 12 + d.month - 1 for d in days], dtype=np.int64)
    month_names = [f"{k // 12:04d}-{k % 12 + 1:02d}" for k in sorted(set(month_keys.tolist()))]
    stats = {
        "initial_equity": initial,
        "final_equity": final,
        "total_return": final / initial - 1.0,
        "cagr": _finite_or_none(cagr),
        "max_drawdown": float(max_dd),
        "sharpe": _finite_or_none(sharpe),
        "sortino": _finite_or_none(sortino),
        "win_rate": float((pnls > 0).mean()) if pnls.size else 0.0,
        "profit_factor": _finite_or_none(gross_win / gross_loss) if gross_loss > 0 else None,
        "exposure": in_market / n if n else 0.0,
        "trade_count": int(pnls.size),
        "average_trade": float(pnls.mean()) if pnls.size else 0.0,
        "total_fees": float(columns["fees"].sum()),
        "ambiguous_bars": int(ambiguous),
        "ambiguous_bars_replayed": int(replayed),
        "halted_days": int(halted_days),
        "bars": n,
        "bar_ms": bar_ms,
        "intrabar": config.intrabar,
    }
    return BacktestResult(
        trade_columns=columns,
        open_time_ms=times,
        equity=equity,
        stats=stats,
        daily_returns=_period_returns(
            day_equity, initial, np.arange(len(days)), [d.isoformat() for d in days]
        ),
        monthly_returns=_period_returns(day_equity, initial, month_keys, month_names),
    )
