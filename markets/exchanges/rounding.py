"""Prices to the venue's tick, quantities down to the step, and the pre-send checks. All Decimal.

* Upbit KRW price units: the table effective 2025-07-31 (rows below 100 KRW are third-party
  transcriptions, marked UNCONFIRMED in the venue notes; prefer ``/v1/orderbook/instruments``).
* Bithumb KRW price units (bithumb-ai-trade-kit docs; sub-100 rows differ from Upbit's).
* Binance: ``PRICE_FILTER`` (grid from ``minPrice`` by ``tickSize``) and ``LOT_SIZE`` step.

Buy prices round down and sell prices round up (never pay more / sell for less than asked);
quantities always round down (never more than the caller has or asked for).
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from .base import Capabilities, OrderRequest, SymbolInfo
from .errors import OrderRejected

D = Decimal
ZERO = Decimal(0)

#: (lower bound inclusive, tick), highest band first. Effective 2025-07-31.
UPBIT_KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (D("1000000"), D("1000")),
    (D("500000"), D("500")),
    (D("100000"), D("100")),
    (D("50000"), D("50")),
    (D("10000"), D("10")),
    (D("5000"), D("5")),
    (D("100"), D("1")),
    (D("10"), D("0.1")),
    (D("1"), D("0.01")),
    (D("0.1"), D("0.001")),
    (D("0.01"), D("0.0001")),
    (D("0.001"), D("0.00001")),
    (D("0.0001"), D("0.000001")),
    (D("0.00001"), D("0.0000001")),
    (D("0"), D("0.00000001")),
)

BITHUMB_KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (D("1000000"), D("1000")),
    (D("500000"), D("500")),
    (D("100000"), D("100")),
    (D("50000"), D("50")),
    (D("10000"), D("10")),
    (D("5000"), D("5")),
    (D("100"), D("1")),
    (D("10"), D("0.01")),
    (D("1"), D("0.001")),
    (D("0"), D("0.0001")),
)


def band_table(info: SymbolInfo, capabilities: Capabilities
               ) -> tuple[tuple[Decimal, Decimal], ...] | None:
    """The price-band table ``info`` is priced by on its venue (``capabilities.price_bands`` of
    its quote currency), or None when the symbol has a fixed tick or the venue no table."""
    if info.tick_size is not None:
        return None
    return capabilities.price_bands.get(info.quote)


def table_tick(price: Decimal, table: tuple[tuple[Decimal, Decimal], ...]) -> Decimal:
    """The tick of the band ``price`` falls in."""
    for lower, tick in table:
        if price >= lower:
            return tick
    return table[-1][1]


def round_to_step(value: Decimal, step: Decimal, *, origin: Decimal = ZERO,
                  rounding: str = ROUND_FLOOR) -> Decimal:
    """``value`` moved onto the grid ``origin + k*step`` (``rounding`` picks the direction)."""
    if step is None or step <= 0:
        return value
    k = ((value - origin) / step).quantize(D(1), rounding=rounding)
    return (origin + k * step).normalize() if k else origin


def _direction(side: str | None) -> str:
    return {"buy": ROUND_FLOOR, "sell": ROUND_CEILING}.get(side or "", ROUND_HALF_EVEN)


def round_price(price: Decimal, symbol: SymbolInfo, *, side: str | None = None,
                table: tuple[tuple[Decimal, Decimal], ...] | None = None) -> Decimal:
    """``price`` on the symbol's tick grid: buy rounds down, sell up, no side to nearest.

    ``symbol.tick_size`` None means a KRW price-band ``table`` applies; with neither (an Upbit
    USDT market, whose ticks are not documented) the price is sent as given and the venue
    validates it.
    """
    price = D(price)
    rounding = _direction(side)
    if symbol.tick_size is not None:
        return round_to_step(price, symbol.tick_size, origin=symbol.min_price or ZERO,
                             rounding=rounding)
    if table is None:
        return price
    tick = table_tick(price, table)
    rounded = round_to_step(price, tick, rounding=rounding)
    # Rounding up across a band edge lands on a multiple of the coarser tick by construction;
    # rounding down below an edge uses the finer tick of the lower band.
    lower_tick = table_tick(rounded, table)
    return round_to_step(rounded, lower_tick, rounding=rounding)


def round_quantity(quantity: Decimal, symbol: SymbolInfo) -> Decimal:
    """``quantity`` rounded down to the symbol's step (LOT_SIZE.stepSize / 1e-8 on KRW)."""
    if symbol.step_size is None:
        return D(quantity)
    return round_to_step(D(quantity), symbol.step_size, rounding=ROUND_FLOOR)


def prepare_order(order: OrderRequest, symbol: SymbolInfo, *,
                  table: tuple[tuple[Decimal, Decimal], ...] | None = None,
                  min_notional_exempt_reduce_only: bool = False,
                  venue: str = "") -> OrderRequest:
    """Round ``order`` to the venue's tick/step and check minimums before sending.

    Raises ``OrderRejected`` (with a message naming the fix) when the rounded quantity is zero
    or below ``min_qty``, or the notional (price x quantity, or ``quote_amount``) is below
    ``min_notional``. A market order without a price skips the notional check (the venue prices
    it); reduce-only orders skip it where the venue exempts them (Binance futures).
    """
    price = round_price(order.price, symbol, side=order.side, table=table) \
        if order.price is not None else None
    quantity = round_quantity(order.quantity, symbol) if order.quantity is not None else None
    quote = D(order.quote_amount) if order.quote_amount is not None else None

    def reject(why: str) -> OrderRejected:
        return OrderRejected(f"{venue or 'order'} {order.symbol}: {why}", venue=venue,
                             code="pre_check")

    if order.type == "limit" and (price is None or price <= 0):
        raise reject("a limit order needs a positive price")
    if quantity is not None:
        if quantity <= 0:
            raise reject(f"quantity {order.quantity} rounds down to 0 with step "
                         f"{fmt(symbol.step_size)}; order at least one step")
        if symbol.min_qty is not None and quantity < symbol.min_qty:
            raise reject(f"quantity {fmt(quantity)} is below the minimum {fmt(symbol.min_qty)}")
    elif quote is None:
        raise reject("give a quantity, or a quote_amount for a market buy")
    exempt = min_notional_exempt_reduce_only and order.reduce_only
    if symbol.min_notional is not None and not exempt:
        notional = None
        if quote is not None and quantity is None:
            notional = quote
        elif price is not None and quantity is not None:
            notional = price * quantity
        if notional is not None and notional < symbol.min_notional:
            raise reject(f"order value {fmt(notional)} {symbol.quote} is below the "
                         f"minimum {fmt(symbol.min_notional)} {symbol.quote}; "
                         "raise the quantity")
    return dataclasses.replace(order, price=price, quantity=quantity, quote_amount=quote)


def fmt(value: Decimal | None) -> str | None:
    """Plain decimal text for the wire (no exponent, no trailing zeros)."""
    if value is None:
        return None
    text = format(D(value).normalize(), "f")
    return text
