"""Per-symbol USDⓈ-M futures trading rules, as the venue publishes them in ``exchangeInfo``.

* ``pricePrecision`` / ``quantityPrecision``: the most decimals a ``price`` / ``quantity`` may
  carry. More decimals are refused with ``-1111 "Precision is over the maximum defined for this
  asset."`` before the tick and step multiples are checked (those refuse with ``-4014 "Price not
  increased by tick size."`` / ``-4023 "Quantity not increased by step size."``). BTCUSDT: tick
  ``0.10`` but ``pricePrecision`` 2, so ``50000.05`` is -4014 and ``50000.051`` is -1111.
* ``MIN_NOTIONAL.notional``: per symbol (BTCUSDT 100, ETHUSDT 20, most others 5 USDT, as read
  from the venue's exchangeInfo in issue 17); reduce-only orders are exempt; a smaller order is
  ``-4164 "Order's notional must be no smaller than <n> (unless you choose reduce only)."``.

A symbol not listed here gets the decimals of its tick and step and a 5 USDT minimum.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from simulator.binance.protocol import decimals
from simulator.market import tick_of


@dataclasses.dataclass(frozen=True)
class FuturesRules:
    price_precision: int
    quantity_precision: int
    min_notional: Decimal


#: symbol -> (pricePrecision, quantityPrecision, MIN_NOTIONAL.notional)
KNOWN = {
    "BTCUSDT": FuturesRules(2, 3, Decimal(100)),
    "ETHUSDT": FuturesRules(2, 3, Decimal(20)),
    "BNBUSDT": FuturesRules(3, 2, Decimal(5)),
    "SOLUSDT": FuturesRules(4, 2, Decimal(5)),
    "XRPUSDT": FuturesRules(4, 1, Decimal(5)),
}
DEFAULT_MIN_NOTIONAL = Decimal(5)


def rules_of(market) -> FuturesRules:
    spec = market.spec
    known = KNOWN.get(spec.symbol)
    if known is not None:
        return known
    return FuturesRules(
        decimals(tick_of(spec, market.last_price)), decimals(spec.step), DEFAULT_MIN_NOTIONAL
    )


def places(value: Decimal) -> int:
    """The significant decimals of ``value`` (trailing zeros do not count: ``"1.50"`` has 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def too_precise(market, price: Decimal | None, qty: Decimal | None) -> bool:
    rules = rules_of(market)
    return (price is not None and places(price) > rules.price_precision) or (
        qty is not None and places(qty) > rules.quantity_precision
    )
