"""Pure parsers for the Binance USDⓈ-M mark price: ``GET /fapi/v1/premiumIndex`` (one object
with ``symbol``, a list without) and the ``markPriceUpdate`` stream event (``<symbol>@markPrice``
every 3 s, ``@markPrice@1s`` every second). Prices and rates are strings (Decimal here); times
int ms. A delivery contract sends ``""`` for the rate and ``0`` for the funding time: None.
"""

from __future__ import annotations

from typing import Any

from .base import MarkPrice
from .kr_parse import dec


def _mark(value: Any, symbol: str) -> Any:
    price = dec(value)
    if price is None or not price.is_finite() or price <= 0:
        raise ValueError(f"{symbol}: mark price {value!r} is not a positive number")
    return price


def _time(value: Any) -> int | None:
    number = int(value) if value not in (None, "") else 0
    return number or None


def _rate(value: Any):
    rate = dec(value)
    if rate is not None and not rate.is_finite():
        raise ValueError(f"funding rate {value!r} is not a number")
    return rate


def parse_premium_index_row(row: dict[str, Any]) -> MarkPrice:
    symbol = str(row["symbol"])
    index = dec(row.get("indexPrice"))
    return MarkPrice(symbol=symbol, mark_price=_mark(row.get("markPrice"), symbol),
                     index_price=index if index is not None and index > 0 else None,
                     funding_rate=_rate(row.get("lastFundingRate")),
                     next_funding_ms=_time(row.get("nextFundingTime")),
                     ts_ms=int(row["time"]))


def parse_premium_index(payload: Any) -> list[MarkPrice]:
    """``/fapi/v1/premiumIndex`` (an object for one symbol, a list for all) -> mark prices."""
    rows = payload if isinstance(payload, list) else [payload]
    return [parse_premium_index_row(r) for r in rows]


def parse_mark_price_event(msg: dict[str, Any]) -> MarkPrice:
    """A ``markPriceUpdate`` event (unwrapped from ``{"stream","data"}``)."""
    symbol = str(msg["s"])
    index = dec(msg.get("i"))
    return MarkPrice(symbol=symbol, mark_price=_mark(msg.get("p"), symbol),
                     index_price=index if index is not None and index > 0 else None,
                     funding_rate=_rate(msg.get("r")), next_funding_ms=_time(msg.get("T")),
                     ts_ms=int(msg["E"]))
