"""Account-state risk gates: may this account place this order now? Pure (stdlib + the pure
position math), so the rules test without a database; ``orders.services`` gathers the facts
under row locks and asks here.

Each gate returns ``None`` (pass) or a sentence a trader understands (the rejection reason that
is stored and pushed). Money is Decimal; percentages are percent (2.5 = 2.5 %); times are int ms
UTC.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

# What a signal does to the position: the backtester's own decision (one path for both).
from strategies.decisions import Plan, plan_action  # noqa: F401 - the services' plan
from strategies.trade_math import (
    DAILY_MAX_LOSS,
    DAILY_TARGET,
    DAY_MS,
    HOUR_MS,
    daily_limit,
    trading_day,
)

ZERO = Decimal("0")


def utc_offset_hours(tz_name: str, ts_ms: int) -> float:
    """The UTC offset of ``tz_name`` at ``ts_ms``, in hours (Asia/Seoul: 9.0)."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(ZoneInfo(tz_name))
    offset = moment.utcoffset()
    return 0.0 if offset is None else offset.total_seconds() / 3600.0


def day_bounds_ms(ts_ms: int, tz_name: str) -> tuple[int, int]:
    """``(start, end)`` ms UTC of the trading day (00:00 to 24:00 in ``tz_name``) holding
    ``ts_ms``, through the backtester's own ``trading_day``."""
    offset = utc_offset_hours(tz_name, ts_ms)
    start = trading_day(ts_ms, offset) * DAY_MS - int(offset * HOUR_MS)
    return start, start + DAY_MS


@dataclasses.dataclass(frozen=True)
class EntryFacts:
    """What the gates look at for a new entry or add (gathered under the account's row lock)."""

    halted: bool
    halted_reason: str
    config_active: bool
    leverage: int
    max_leverage: int
    symbol: str
    day_start_equity: Decimal | None
    equity: Decimal
    daily_target_pct: Decimal | None
    daily_max_loss_pct: Decimal | None
    open_order_for_symbol: bool = False


def halted_reason(halted: bool, reason: str) -> str | None:
    if halted:
        why = f" ({reason})" if reason else ""
        return (
            f"account is halted{why}; no new orders until a person resumes it in the admin"
        )
    return None


def daily_limit_hit(
    day_start_equity: Decimal | None,
    equity: Decimal,
    daily_target_pct: Decimal | None,
    daily_max_loss_pct: Decimal | None,
) -> tuple[str, str] | None:
    """``("target" | "max_loss", the reason)`` when today's change of equity reached a limit
    (``strategies.trade_math.daily_limit``), else None."""
    if day_start_equity is None or day_start_equity <= 0:
        return None
    hit = daily_limit(
        float(day_start_equity),
        float(equity),
        float(daily_target_pct or 0),
        float(daily_max_loss_pct or 0),
    )
    change = (equity / day_start_equity - 1) * 100
    if hit == DAILY_TARGET:
        return "target", (
            f"daily target reached: equity is up {change:.2f}% today (target "
            f"{_pct(daily_target_pct)}%); no new entries until tomorrow"
        )
    if hit == DAILY_MAX_LOSS:
        return "max_loss", (
            f"daily max loss hit: equity is down {-change:.2f}% today (limit "
            f"{_pct(daily_max_loss_pct)}%); no new entries until tomorrow"
        )
    return None


def _pct(value) -> str:
    """A percentage as a trader wrote it: 2, not 2.0000 (the column's four places)."""
    return format(Decimal(value).normalize(), "f")


def daily_limit_reason(
    day_start_equity: Decimal | None,
    equity: Decimal,
    daily_target_pct: Decimal | None,
    daily_max_loss_pct: Decimal | None,
) -> str | None:
    """The daily target / max loss gate: :func:`daily_limit_hit`'s reason."""
    hit = daily_limit_hit(day_start_equity, equity, daily_target_pct, daily_max_loss_pct)
    return hit[1] if hit else None


def entry_reason(facts: EntryFacts) -> str | None:
    """Why a new entry or add must not be placed, or None. Checked in this order: halted,
    inactive config, leverage, an order still open on the symbol, daily limits."""
    halted = halted_reason(facts.halted, facts.halted_reason)
    if halted:
        return halted
    if not facts.config_active:
        return "strategy config is inactive; switch it on to trade"
    if facts.leverage > facts.max_leverage:
        return (
            f"leverage {facts.leverage}x is above the maximum {facts.max_leverage}x "
            f"for {facts.symbol}; lower the config's leverage"
        )
    if facts.open_order_for_symbol:
        return f"an earlier order for {facts.symbol} is still open; waiting for it to finish"
    return daily_limit_reason(
        facts.day_start_equity, facts.equity, facts.daily_target_pct, facts.daily_max_loss_pct
    )


def balance_reason(
    available: Decimal, needed: Decimal, asset: str, *, what: str = "this order"
) -> str | None:
    """Insufficient balance: ``needed`` (quote or base, fees included) above ``available``."""
    if needed > available:
        return (
            f"insufficient balance: {what} needs {needed.normalize():f} {asset} "
            f"(fees included) but {available.normalize():f} {asset} is free"
        )
    return None


def min_order_reason(
    quantity: Decimal,
    price: Decimal,
    *,
    min_qty: Decimal,
    min_notional: Decimal,
    quote: str,
    symbol: str,
) -> str | None:
    """Below the venue minimum (5,000 KRW on Upbit/Bithumb; MIN_NOTIONAL on Binance)."""
    if quantity <= 0:
        return f"order size for {symbol} rounds down to 0; add funds or raise the sizing"
    if min_qty and quantity < min_qty:
        return f"quantity {quantity.normalize():f} is below the minimum {min_qty.normalize():f}"
    notional = quantity * price
    if min_notional and notional < min_notional:
        return (
            f"order value {notional.quantize(Decimal('0.01')):f} {quote} is below the venue "
            f"minimum {min_notional.normalize():f} {quote} for {symbol}"
        )
    return None
