"""Position math shared by the backtester and the paper/live brokers: fills, exits, leverage,
daily limits. Pure scalar functions on floats, so a broker calls them per price event and the
backtester calls the very same functions (compiled by numba) inside its bar loop.

Conventions and units:

* ``side`` is ``LONG`` (+1) or ``SHORT`` (-1); an order's direction is ``BUY`` (+1) / ``SELL`` (-1).
* Prices are floats (market data). Brokers round quantities and prices to the venue's step and
  tick with Decimal *after* these functions; the backtester does not round.
* Percentages (``*_pct``) are percent of the entry price (2.0 = 2 %); fee rates are fractions
  (0.0005 = 0.05 %); slippage is in basis points of the price (5 = 0.05 %).
* A level that is switched off (percent 0) is NaN; every comparison with NaN is False.
* Margin is isolated: a position's margin is ``entry notional / leverage``; losing it all is a
  liquidation. The liquidation price is Binance's isolated formula for one position without
  the maintenance amount: long ``(q*E - M) / (q*(1 - mmr))``, short ``(q*E + M) / (q*(1 + mmr))``.
  A liquidation loses the whole isolated margin (the venue's insurance fund keeps the rest).
* Exit order within one price range (a bar, or a single price for a broker): a gap through a
  level fills at the opening price; liquidation before stop when both are crossed; when the
  adverse level (stop / trailing / liquidation) and the target are both inside the range, the
  adverse one is taken first (``adverse_first=True``, the pessimistic default) and the bar is
  reported as ambiguous.

Pure: standard library only (numpy is not even needed).
"""

from __future__ import annotations

import dataclasses
import math

from strategies._jit import njit
from strategies.params import ParamError, Params, param

LONG = 1
SHORT = -1
BUY = 1
SELL = -1
DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# Why a position (or part of it) was closed. Stored as small ints in the backtest loop.
REASON_NONE = 0
REASON_SIGNAL = 1
REASON_STOP = 2
REASON_TRAILING = 3
REASON_TARGET = 4
REASON_LIQUIDATION = 5
REASON_REVERSE = 6
REASON_END = 7
REASON_NAMES = {
    REASON_NONE: "none",
    REASON_SIGNAL: "signal",
    REASON_STOP: "stop_loss",
    REASON_TRAILING: "trailing_stop",
    REASON_TARGET: "take_profit",
    REASON_LIQUIDATION: "liquidation",
    REASON_REVERSE: "reverse",
    REASON_END: "end_of_data",
}

DAILY_NONE = 0
DAILY_TARGET = 1
DAILY_MAX_LOSS = 2


@dataclasses.dataclass(frozen=True)
class RiskParams(Params):
    """Per-config trading rules around a strategy (what the admin stores on StrategyConfig)."""

    label = "risk settings"
    fee_rate: float = param(0.0005, min=0.0, max=0.05, help="taker fee, fraction of notional")
    maker_fee_rate: float = param(0.0002, min=0.0, max=0.05, help="maker fee (limit orders)")
    slippage_bps: float = param(0.0, min=0.0, max=1000.0, help="adverse slippage per fill, bps")
    leverage: float = param(1.0, min=1.0, max=125.0, help="1 = no leverage")
    maintenance_margin_rate: float = param(
        0.005, min=0.0, max=0.5, help="maintenance margin, fraction of notional"
    )
    stop_loss_pct: float = param(0.0, min=0.0, max=100.0, help="% below entry (long); 0 = off")
    take_profit_pct: float = param(0.0, min=0.0, max=1000.0, help="% beyond entry; 0 = off")
    trailing_stop_pct: float = param(0.0, min=0.0, max=100.0, help="% from best price; 0 = off")
    daily_target_pct: float = param(0.0, min=0.0, max=1000.0, help="stop entering after +X %")
    daily_max_loss_pct: float = param(0.0, min=0.0, max=100.0, help="stop entering after -X %")
    day_offset_hours: float = param(0.0, min=-12.0, max=14.0, help="trading day's UTC offset")

    def check(self) -> None:
        if self.leverage > 1.0 and self.maintenance_margin_rate >= 1.0 / self.leverage:
            raise ParamError(
                "maintenance_margin_rate must be below 1 / leverage "
                f"({1.0 / self.leverage:.4f} at {self.leverage:g}x)"
            )


# ---------------------------------------------------------------------------- fills


@njit
def fee(notional, rate):
    """Fee in quote currency for a fill of ``notional`` (quote) at ``rate`` (fraction)."""
    return abs(notional) * rate


@njit
def slipped_price(price, direction, slippage_bps):
    """Fill price after adverse slippage: buys pay more, sells receive less."""
    return price * (1.0 + direction * slippage_bps / 10_000.0)


@njit
def affordable_quantity(available, price, leverage, fee_rate):
    """Largest quantity whose margin plus entry fee fits in ``available`` quote currency."""
    if available <= 0.0 or price <= 0.0:
        return 0.0
    return available / (price * (1.0 / leverage + fee_rate))


@njit
def unrealized_pnl(side, quantity, entry_price, price):
    """Profit (quote) of ``quantity`` held on ``side`` from ``entry_price`` to ``price``."""
    return side * quantity * (price - entry_price)


@njit
def average_entry(quantity, entry_price, add_quantity, add_price):
    """Quantity-weighted entry price after adding ``add_quantity`` at ``add_price``."""
    total = quantity + add_quantity
    if total <= 0.0:
        return add_price
    return (quantity * entry_price + add_quantity * add_price) / total


# ---------------------------------------------------------------------------- exit levels


@njit
def stop_price(side, entry_price, stop_loss_pct):
    """Stop-loss level, ``stop_loss_pct`` percent against ``side`` from entry; NaN when off."""
    if stop_loss_pct <= 0.0:
        return math.nan
    return entry_price * (1.0 - side * stop_loss_pct / 100.0)


@njit
def target_price(side, entry_price, take_profit_pct):
    """Take-profit level, ``take_profit_pct`` percent in favour of ``side``; NaN when off."""
    if take_profit_pct <= 0.0:
        return math.nan
    return entry_price * (1.0 + side * take_profit_pct / 100.0)


@njit
def trailing_price(side, best_price, trailing_stop_pct):
    """Trailing stop: ``trailing_stop_pct`` percent back from the best price seen; NaN when off.

    ``best_price`` is the highest price since entry for a long, the lowest for a short.
    """
    if trailing_stop_pct <= 0.0:
        return math.nan
    return best_price * (1.0 - side * trailing_stop_pct / 100.0)


@njit
def liquidation_price(side, quantity, entry_price, margin, maintenance_margin_rate):
    """Isolated-margin liquidation price (0.0 for a long that cannot be liquidated)."""
    if quantity <= 0.0:
        return math.nan
    if side == LONG:
        value = (quantity * entry_price - margin) / (quantity * (1.0 - maintenance_margin_rate))
        return max(value, 0.0)
    return (quantity * entry_price + margin) / (quantity * (1.0 + maintenance_margin_rate))


@njit
def check_exit(side, open_price, high, low, stop, trailing, liquidation, target, adverse_first):
    """Which exit a price range triggers: ``(reason, level, ambiguous)``.

    The range is one bar (open, high, low), or one price for a broker (all three equal). Levels
    may be NaN (off). ``level`` is the trigger price before slippage: the level itself, or the
    open when the range opens beyond it (a gap). ``ambiguous`` is True when an adverse level and
    the target are both inside the range and neither was gapped through, so the outcome depends
    on the intrabar path; ``adverse_first`` picks the adverse one (pessimistic), otherwise the
    target. Returns ``(REASON_NONE, nan, False)`` when nothing triggers.
    """
    # The adverse level hit first as price moves against the position, and which rule it is.
    adverse = math.nan
    reason = REASON_NONE
    for candidate, why in (
        (liquidation, REASON_LIQUIDATION),
        (stop, REASON_STOP),
        (trailing, REASON_TRAILING),
    ):
        if not math.isnan(candidate) and (
            math.isnan(adverse) or side * (candidate - adverse) > 0.0
        ):
            adverse = candidate
            reason = why
    # Gaps at the open: liquidation first, then the nearest adverse level, then the target.
    if not math.isnan(liquidation) and side * (open_price - liquidation) <= 0.0:
        return REASON_LIQUIDATION, open_price, False
    if not math.isnan(adverse) and side * (open_price - adverse) <= 0.0:
        return reason, open_price, False
    if not math.isnan(target) and side * (open_price - target) >= 0.0:
        return REASON_TARGET, open_price, False
    worst = low if side == LONG else high
    best = high if side == LONG else low
    hit_adverse = not math.isnan(adverse) and side * (worst - adverse) <= 0.0
    hit_target = not math.isnan(target) and side * (best - target) >= 0.0
    if hit_adverse and hit_target:
        if adverse_first:
            return reason, adverse, True
        return REASON_TARGET, target, True
    if hit_adverse:
        return reason, adverse, False
    if hit_target:
        return REASON_TARGET, target, False
    return REASON_NONE, math.nan, False


# ---------------------------------------------------------------------------- daily limits


@njit
def trading_day(ts_ms, day_offset_hours):
    """Index of the trading day containing ``ts_ms`` for a day starting at 00:00 UTC+offset."""
    return (ts_ms + int(day_offset_hours * HOUR_MS)) // DAY_MS


@njit
def daily_limit(day_start_equity, equity, daily_target_pct, daily_max_loss_pct):
    """``DAILY_TARGET`` / ``DAILY_MAX_LOSS`` once the day's change reaches a limit, else NONE.

    Limits of 0 are off. Once reached, no new entries for the rest of that trading day.
    """
    if day_start_equity <= 0.0:
        return DAILY_NONE
    change_pct = (equity / day_start_equity - 1.0) * 100.0
    if daily_target_pct > 0.0 and change_pct >= daily_target_pct:
        return DAILY_TARGET
    if daily_max_loss_pct > 0.0 and change_pct <= -daily_max_loss_pct:
        return DAILY_MAX_LOSS
    return DAILY_NONE


# ---------------------------------------------------------------------------- a position's levels
# The backtester's loop, the paper/live services (when a fill opens or adds) and the exit guard
# all take a position's levels from here.


@njit
def entry_levels(side, entry_price, stop_loss_pct, take_profit_pct):
    """``(stop, target)`` of a position whose (average) entry is ``entry_price``; NaN when off.
    Set at each fill, so they follow the average entry."""
    return (
        stop_price(side, entry_price, stop_loss_pct),
        target_price(side, entry_price, take_profit_pct),
    )


@njit
def position_liquidation(side, quantity, entry_price, margin, leverage, maintenance_margin_rate):
    """The liquidation level of an isolated position: it applies with leverage above 1 and to
    every short; NaN for an unleveraged long (it cannot be liquidated)."""
    if leverage > 1.0 or side == SHORT:
        return liquidation_price(side, quantity, entry_price, margin, maintenance_margin_rate)
    return math.nan


@njit
def levels(
    side, quantity, entry_price, margin, best_price, stop_loss_pct, take_profit_pct,
    trailing_stop_pct, leverage, maintenance_margin_rate,
):
    """``(stop, trailing, liquidation, target)`` of an open position, what the backtester
    checks each bar. ``best_price`` is the highest price since entry for a long (lowest for a
    short), the entry price right after the fill."""
    stop, target = entry_levels(side, entry_price, stop_loss_pct, take_profit_pct)
    return (
        stop,
        trailing_price(side, best_price, trailing_stop_pct),
        position_liquidation(
            side, quantity, entry_price, margin, leverage, maintenance_margin_rate
        ),
        target,
    )


@dataclasses.dataclass(frozen=True)
class ExitLevels:
    """The prices at which an open position must be closed (NaN = no such level)."""

    stop: float
    trailing: float
    liquidation: float
    target: float


def exit_levels(
    risk: RiskParams, *, side: int, quantity: float, entry_price: float, margin: float,
    best_price: float,
) -> ExitLevels:
    """:func:`levels` under ``risk``, for a broker's exit guard. A broker then calls
    :func:`check_exit` with each price (open = high = low = price)."""
    return ExitLevels(*levels(
        side, quantity, entry_price, margin, best_price, risk.stop_loss_pct,
        risk.take_profit_pct, risk.trailing_stop_pct, risk.leverage,
        risk.maintenance_margin_rate,
    ))


def held_levels(
    side: int, *, stop: float, target: float, best_price: float, trailing_stop_pct: float,
    liquidation: float,
) -> ExitLevels:
    """The levels of a position whose stop, target and liquidation were fixed at its fills
    (:func:`entry_levels`, :func:`position_liquidation`; stored by the order services): the
    trailing stop still moves with ``best_price`` (NaN when unknown). NaN = no such level."""
    return ExitLevels(
        stop=stop,
        trailing=trailing_price(side, best_price, trailing_stop_pct),
        liquidation=liquidation,
        target=target,
    )
