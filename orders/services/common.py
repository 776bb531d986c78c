"""Shared by every job of the services: the models' decimal places, time in milliseconds,
client order ids, the venue's rules for a symbol (tick, step, limit prices) and the lookup of a
config's (or the manual) open position. Reads only; writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone

from markets.exchanges import capabilities_of, rounding
from markets.exchanges.base import SymbolInfo
from markets.models import Symbol
from orders.brokers.base import Costs
from orders.models import Position, Side
from strategies import trade_math

ZERO = Decimal("0")
PLACES = Decimal("0.000000000001")
#: Reservations are rounded up to 1e-8: with SQLite's REAL columns (15 significant digits)
#: a 12-place amount on a large balance would not round-trip.
RESERVE_PLACES = Decimal("0.00000001")
#: A manual order's value (quantity x price) must stay below this: reserves are computed to
#: 8 places in 28 significant digits, and no balance comes near it.
MAX_ORDER_VALUE = Decimal(10) ** 15


def dec(value) -> Decimal:
    """A float or text as Decimal with the models' 12 decimal places."""
    if isinstance(value, Decimal):
        return value.quantize(PLACES)
    return Decimal(repr(float(value)) if isinstance(value, float) else str(value)).quantize(PLACES)


def ms_to_dt(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def new_client_order_id() -> str:
    """33 characters, ``[A-Za-z0-9]``: valid on every venue (Binance <= 36, Upbit unique)."""
    return "t" + uuid.uuid4().hex


# ------------------------------------------------------------------------ venue rules


def symbol_info(symbol: Symbol) -> SymbolInfo:
    return SymbolInfo(
        code=symbol.code,
        base=symbol.base,
        quote=symbol.quote,
        market_type=symbol.market_type,
        tick_size=symbol.tick_size,
        step_size=symbol.step_size,
        min_qty=symbol.min_qty,
        min_notional=symbol.min_notional,
        max_leverage=symbol.max_leverage,
    )


def tick_table(symbol: Symbol):
    """The price-band table of a symbol without a fixed tick (Upbit/Bithumb KRW), else None:
    chosen by the venue's ``Capabilities.price_bands``, not its name."""
    return rounding.band_table(symbol_info(symbol), capabilities_of(symbol.exchange.adapter))


def round_price(symbol: Symbol, price: Decimal, side: str | None = None) -> Decimal:
    return rounding.round_price(price, symbol_info(symbol), side=side, table=tick_table(symbol))


def limit_price(symbol: Symbol, side: str, last_price: Decimal, costs: Costs) -> Decimal | None:
    """A signal's limit price: the last price moved ``aggressiveness_pct`` past it (buy above,
    sell below) on the venue's tick; None (a market order) when aggressiveness is 0."""
    if costs.aggressiveness_pct <= 0:
        return None
    offset = Decimal(repr(costs.aggressiveness_pct)) / 100
    raw = last_price * (1 + offset) if side == Side.BUY else last_price * (1 - offset)
    # Round away from the last price so the order stays marketable.
    price = round_price(symbol, raw, "sell" if side == Side.BUY else "buy")
    return price if price > 0 else None


def _bucket(config_id: int | None) -> dict:
    """The filter of one config's positions and orders, or of the manual ones (no config)."""
    return {"config__isnull": True} if config_id is None else {"config_id": config_id}


def _open_position(
    account_id: int, symbol_id: int, *, config_id: int | None, lock: bool
) -> Position | None:
    """The open position of ``config_id`` (None: the account's manual orders) on the symbol:
    each config owns its positions (``orders.positions``)."""
    qs = Position.objects.filter(
        account_id=account_id, symbol_id=symbol_id, closed_at__isnull=True, **_bucket(config_id)
    )
    if lock:
        qs = qs.select_for_update(of=("self",))
    return qs.first()


def _side_int(position: Position | None) -> int:
    if position is None:
        return 0
    return trade_math.LONG if position.side == Position.PositionSide.LONG else trade_math.SHORT
