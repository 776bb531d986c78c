"""The exit guard: every open position checked against its stop, target, trailing stop and
(paper, leveraged) liquidation with the backtester's own ``strategies.trade_math.check_exit``.

Two ways in:

* price updates from the stream: the task ``exit_guard`` (``settings.TRADESITE_TASKS``) with
  ``venue``, ``symbol``, ``price`` (float) and ``ts_ms`` (int ms UTC), optionally ``high`` and
  ``low`` for a range of trades since the last message; and
* every beat tick (``run_trading``) as a fallback: the newest stored candle of each symbol with
  an open position, candles that opened before the position excluded.

A range is ``(open, high, low)``; a single price is all three. As in the backtester, the
trailing stop trails the best price seen *before* this range, and moves after it.
A hit closes the whole position through the account's broker (market, reduce-only) at the
trigger level (the open when the range gapped through it), with the broker's slippage and fee.
Resting paper limit orders on the symbol are matched against the same prices.

Liquidation of a paper perpetual is checked against the venue's mark price, as Binance does,
when a fresh one is stored (``markets.markprice.fresh_marks``, under 60 s old): the mark at or
beyond the liquidation price liquidates, whatever the last trade did; without a fresh mark the
trade prices are used and the log says so. Stop, target and trailing stop always use the trade
prices (Binance's default ``workingType`` CONTRACT_PRICE, what the venue stops are placed
with). The replay (``guard_range``) stays on the candles, like the backtester.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from decimal import Decimal

from django.db.models import Max

from markets.markprice import fresh_marks
from markets.models import Account, Candle, Symbol
from markets.timeframes import timeframe_ms
from orders import services
from orders.models import Position
from strategies import trade_math
from strategies.models import StrategyConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class GuardReport:
    positions: int = 0
    closed: int = 0
    resting_filled: int = 0
    errors: int = 0
    reasons: list[str] = dataclasses.field(default_factory=list)


def _f(value) -> float:
    return math.nan if value is None else float(value)


def position_levels(position: Position) -> trade_math.ExitLevels:
    """The stored levels of ``position`` (NaN = none), the trailing stop from its best price.
    Liquidation applies to paper accounts; a live venue liquidates by itself."""
    side = trade_math.LONG if position.side == Position.PositionSide.LONG else trade_math.SHORT
    liquidation = math.nan
    if position.account.mode == Account.Mode.PAPER:
        liquidation = _f(position.liquidation_price)
    return trade_math.held_levels(
        side,
        stop=_f(position.stop_price),
        target=_f(position.target_price),
        best_price=_f(position.best_price),
        trailing_stop_pct=float(position.trailing_stop_pct or 0),
        liquidation=liquidation,
    )


def check_position(
    position: Position, open_price: float, high: float, low: float, ts_ms: int,
    *, mark: Decimal | None = None, use_mark: bool = False,
) -> str | None:
    """Check one position against one range; close it on a hit (returns the reason) or move
    its best price for the trailing stop. With ``use_mark`` (the live guard), a perpetual's
    liquidation is checked against ``mark`` (its fresh mark price; None: none is fresh, the
    trade prices are used and the log says so)."""
    side = trade_math.LONG if position.side == Position.PositionSide.LONG else trade_math.SHORT
    levels = position_levels(position)
    if (use_mark and not math.isnan(levels.liquidation)
            and position.symbol.market_type == Symbol.MarketType.PERPETUAL):
        if mark is None:
            from orders.equity import note_no_mark

            note_no_mark(position.symbol_id, "the liquidation check")
        else:
            if side * (float(mark) - levels.liquidation) <= 0.0:
                services.close_position(
                    position, trade_math.REASON_NAMES[trade_math.REASON_LIQUIDATION],
                    last_price=services.dec(levels.liquidation), ts_ms=ts_ms,
                )
                return trade_math.REASON_NAMES[trade_math.REASON_LIQUIDATION]
            levels = dataclasses.replace(levels, liquidation=math.nan)
    reason, level, _ambiguous = trade_math.check_exit(
        side, open_price, high, low, levels.stop, levels.trailing, levels.liquidation,
        levels.target, True,
    )
    if reason == trade_math.REASON_NONE:
        services.track_best_price(position, high if side == trade_math.LONG else low)
        return None
    name = trade_math.REASON_NAMES[reason]
    services.close_position(
        position, name, last_price=services.dec(level), ts_ms=ts_ms,
    )
    return name


def guard_symbol(
    symbol: Symbol,
    price: float,
    ts_ms: int,
    *,
    high: float | None = None,
    low: float | None = None,
    account_ids=None,
) -> GuardReport:
    """Check every open position on ``symbol`` against ``price`` (and the range up to
    ``high``/``low``). ``account_ids`` limits the check (tests, one user's replay)."""
    report = GuardReport()
    high = max(price, high if high is not None else price)
    low = min(price, low if low is not None else price)
    if not all(math.isfinite(v) and v > 0 for v in (price, high, low)):
        log.warning("exit guard: ignoring bad price %s/%s/%s for %s", price, high, low, symbol)
        return report
    positions = Position.objects.filter(symbol=symbol, closed_at__isnull=True).select_related(
        "account__exchange", "symbol__exchange", "config"
    )
    if account_ids is not None:
        positions = positions.filter(account_id__in=list(account_ids))
    positions = list(positions)
    mark = None
    if positions and symbol.market_type == Symbol.MarketType.PERPETUAL:
        mark = fresh_marks([symbol.pk]).get(symbol.pk)
    for position in positions:
        report.positions += 1
        try:
            # Opened after this range began: only the price itself applies.
            opened_ms = int(position.opened_at.timestamp() * 1000)
            o, h, lo = (price, high, low) if opened_ms <= ts_ms else (price, price, price)
            reason = check_position(position, o, h, lo, ts_ms, mark=mark, use_mark=True)
        except Exception:
            report.errors += 1
            log.exception("exit guard: position %s failed", position.pk)
            continue
        if reason:
            report.closed += 1
            report.reasons.append(reason)
    try:
        report.resting_filled = services.match_resting_orders(
            symbol, services.dec(price), ts_ms
        )
    except Exception:
        report.errors += 1
        log.exception("exit guard: matching resting orders on %s failed", symbol)
    return report


def guard_range(
    symbol: Symbol, open_price: float, high: float, low: float, ts_ms: int, *, account_ids=None
) -> GuardReport:
    """Check the open positions on ``symbol`` against one candle-like range that began at
    ``ts_ms`` (the replay and the beat fallback)."""
    report = GuardReport()
    positions = Position.objects.filter(
        symbol=symbol, closed_at__isnull=True, opened_at__lte=services.ms_to_dt(ts_ms)
    ).select_related("account__exchange", "symbol__exchange", "config")
    if account_ids is not None:
        positions = positions.filter(account_id__in=list(account_ids))
    for position in positions:
        report.positions += 1
        try:
            reason = check_position(position, open_price, high, low, ts_ms)
        except Exception:
            report.errors += 1
            log.exception("exit guard: position %s failed", position.pk)
            continue
        if reason:
            report.closed += 1
            report.reasons.append(reason)
    return report


def guard_by_name(venue: str, symbol_code: str, price: float, ts_ms: int,
                  high: float | None = None, low: float | None = None) -> GuardReport:
    symbol = Symbol.objects.filter(exchange__slug=venue, code=symbol_code).first()
    if symbol is None:
        log.warning("exit guard: unknown symbol %s:%s", venue, symbol_code)
        return GuardReport()
    return guard_symbol(symbol, float(price), int(ts_ms), high=high, low=low)


def guard_all_from_candles() -> GuardReport:
    """The beat fallback: each symbol with an open position, checked against the close of its
    newest stored candle (1m when stored, else the smallest timeframe its configs trade): the
    last price known. The candle's high and low are not used: a fallback run cannot tell which
    part of the range an earlier run or the stream already saw, and the trailing stop must not
    be checked against a low that came before the high that moved it."""
    total = GuardReport()
    symbol_ids = set(
        Position.objects.filter(closed_at__isnull=True).values_list("symbol_id", flat=True)
    )
    for symbol in Symbol.objects.filter(pk__in=symbol_ids).select_related("exchange"):
        timeframes = sorted(
            {"1m", *StrategyConfig.objects.filter(symbol=symbol).values_list(
                "timeframe", flat=True)},
            key=timeframe_ms,
        )
        candle = None
        for timeframe in timeframes:
            newest = Candle.objects.filter(symbol=symbol, timeframe=timeframe).aggregate(
                t=Max("open_time")
            )["t"]
            if newest is not None:
                candle = Candle.objects.get(symbol=symbol, timeframe=timeframe, open_time=newest)
                break
        if candle is None:
            continue
        close_ms = int(candle.open_time.timestamp() * 1000) + timeframe_ms(candle.timeframe)
        report = guard_symbol(symbol, candle.close, close_ms)
        total.positions += report.positions
        total.closed += report.closed
        total.errors += report.errors
        total.resting_filled += report.resting_filled
        total.reasons += report.reasons
    return total


def last_price(symbol: Symbol) -> Decimal | None:
    from orders.equity import last_prices

    return last_prices([symbol.pk]).get(symbol.pk)
