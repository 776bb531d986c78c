"""Pure parsers for the Upbit/Bithumb family (shared wire design). Venue field names stop here.

Quotation data arrives as JSON numbers (floats here); private data as strings (``Decimal``).
The WebSocket private streams send numbers, converted via ``str`` to keep their digits.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from markets.candle_contract import DroppedCandles, keep_valid

from .base import (
    CANCELLED,
    FILLED,
    NEW,
    OPEN,
    PARTIALLY_FILLED,
    Balance,
    BalanceUpdate,
    CandleRow,
    FillInfo,
    OrderInfo,
    OrderUpdate,
    SymbolInfo,
    Trade,
)
from .errors import AuthenticationError

log = logging.getLogger(__name__)

ZERO = Decimal(0)
_MARKET_TYPES = {"price", "market", "best"}


def as_object(frame: Any) -> dict[str, Any]:
    """A WebSocket frame as a dict: already decoded, or JSON text/bytes decoded here."""
    msg = frame if isinstance(frame, dict) else json.loads(frame)
    if not isinstance(msg, dict):
        raise ValueError(f"expected a JSON object, got {type(msg).__name__}")
    return msg


def dec(value: Any) -> Decimal | None:
    """Decimal from a wire string or number (numbers via ``str``); None for null/empty."""
    if value is None or value == "":
        return None
    try:
        return Decimal(value if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def naive_utc_ms(text: str) -> int:
    """``"2026-03-11T14:40:00"`` (UTC, no zone) -> epoch ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def iso_ms(text: str | None) -> int | None:
    """``"2026-03-22T21:42:22+09:00"`` -> epoch ms (naive text is read as UTC)."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_candles(rows: list[dict[str, Any]], timeframe: str | None = None, *,
                  venue: str = "", dropped: DroppedCandles | None = None) -> list[CandleRow]:
    """REST candles (newest first on the wire) -> CandleRows oldest first. Rows that break the
    candle contract (:mod:`markets.candle_contract`: NaN, close above high, an open time off
    ``timeframe``'s grid ...) are logged, counted in ``dropped`` and never returned."""
    out = [
        CandleRow(
            naive_utc_ms(row["candle_date_time_utc"]),
            float(row["opening_price"]),
            float(row["high_price"]),
            float(row["low_price"]),
            float(row["trade_price"]),
            float(row["candle_acc_trade_volume"]),
            float(row["candle_acc_trade_price"]),
        )
        for row in rows
    ]
    symbol = str(rows[0].get("market", "")) if rows else ""
    out = keep_valid(out, timeframe, venue=venue, symbol=symbol, dropped=dropped)
    out.sort(key=lambda c: c.open_time_ms)
    return out


def parse_trade(msg: dict[str, Any]) -> Trade:
    """A WS ``trade`` frame (or a REST ``trades/ticks`` row) -> Trade (aggressor side)."""
    side = msg["ask_bid"]
    if side not in ("ASK", "BID"):
        raise ValueError(f"unknown ask_bid {side!r}")
    price, qty = float(msg["trade_price"]), float(msg["trade_volume"])
    if not (price > 0 and qty > 0):  # also rejects NaN
        raise ValueError(f"bad trade price/volume {price!r}/{qty!r}")
    ts_ms = int(msg.get("trade_timestamp") or msg["timestamp"])
    trade_id = msg.get("sequential_id")
    if trade_id is None:
        # Frames without sequential_id (seen in a library's fixture): a composite key that
        # stays stable if the venue re-sends the same trade.
        trade_id = f"{ts_ms}:{msg['trade_price']}:{msg['trade_volume']}:{side}"
    # Positional on purpose: this runs per message and keywords cost twice as much.
    return Trade(msg.get("code") or msg["market"], str(trade_id), ts_ms, price, qty,
                 "sell" if side == "ASK" else "buy")


def check_ws_error(msg: dict[str, Any], venue: str) -> None:
    """Raise for an error frame: INVALID_AUTH ends the stream, others are bad messages."""
    err = msg.get("error")
    if isinstance(err, dict):
        name, text = err.get("name"), err.get("message", "")
        if name == "INVALID_AUTH":
            raise AuthenticationError(f"{venue}: {name} {text}", venue=venue, code=name,
                                      venue_message=text)
        raise ValueError(f"error frame {name}: {text}")


def parse_ws_public(frame: Any, venue: str) -> list[Trade]:
    """One public frame (decoded dict or JSON text) -> trades; ``{"status":"UP"}`` and other
    types -> []."""
    msg = as_object(frame)
    if msg.get("type") == "trade":
        return [parse_trade(msg)]
    check_ws_error(msg, venue)
    if "status" in msg or "type" in msg:
        return []
    raise ValueError("frame has neither type nor status")


def parse_balances(rows: list[dict[str, Any]]) -> list[Balance]:
    return [Balance(r["currency"], dec(r["balance"]) or ZERO, dec(r["locked"]) or ZERO)
            for r in rows]


def parse_markets(rows: list[dict[str, Any]], *, min_totals: dict[str, Decimal],
                  ticks: dict[str, Decimal | None]) -> list[SymbolInfo]:
    """``market/all`` rows -> SymbolInfo (``QUOTE-BASE`` codes; 8-decimal volume step)."""
    out = []
    for row in rows:
        code = row["market"]
        quote, _, base = code.partition("-")
        out.append(SymbolInfo(code=code, base=base, quote=quote, market_type="spot",
                              tick_size=ticks.get(quote), step_size=Decimal("0.00000001"),
                              min_qty=None, min_notional=min_totals.get(quote)))
    return out


def _status(state: str, ord_type: str, executed: Decimal, remaining: Decimal | None) -> str:
    if state == "done":
        return FILLED
    if state == "cancel":
        # A market buy (ord_type=price) ends in "cancel" even when it executed.
        return FILLED if executed > 0 and ord_type in _MARKET_TYPES else CANCELLED
    if state == "trade":
        return PARTIALLY_FILLED if remaining and remaining > 0 else FILLED
    if state == "watch":
        return NEW
    if state == "wait":
        return PARTIALLY_FILLED if executed > 0 else OPEN
    raise ValueError(f"unknown order state {state!r}")


def parse_order(obj: dict[str, Any], *, id_key: str = "uuid") -> OrderInfo:
    """REST order object (Upbit, Bithumb v1 GET) -> OrderInfo with fills.

    Upbit/Bithumb report fees per order, not per trade: each fill's fee is the order's
    ``paid_fee`` apportioned by the fill's funds (quote currency).
    """
    ord_type = obj["ord_type"]
    executed = dec(obj.get("executed_volume")) or ZERO
    remaining = dec(obj.get("remaining_volume"))
    trades = obj.get("trades") or []
    paid_fee = dec(obj.get("paid_fee"))
    quote = obj["market"].partition("-")[0]
    total_funds = sum((dec(t.get("funds")) or ZERO for t in trades), ZERO)
    fills = []
    for t in trades:
        funds = dec(t.get("funds")) or ZERO
        fee = (paid_fee * funds / total_funds) if paid_fee is not None and total_funds else None
        fills.append(FillInfo(trade_id=str(t["uuid"]), price=dec(t["price"]),
                              quantity=dec(t["volume"]), fee=fee, fee_asset=quote,
                              ts_ms=iso_ms(t.get("created_at")) or 0))
    avg = None
    filled_qty = sum((f.quantity for f in fills), ZERO)
    if fills and filled_qty:
        avg = total_funds / filled_qty
    elif executed and dec(obj.get("executed_funds")):
        avg = dec(obj["executed_funds"]) / executed
    volume = dec(obj.get("volume"))
    return OrderInfo(
        exchange_order_id=str(obj[id_key]),
        client_order_id=obj.get("identifier") or obj.get("client_order_id"),
        symbol=obj["market"],
        side="buy" if obj["side"] == "bid" else "sell",
        type="limit" if ord_type == "limit" else "market",
        status=_status(obj["state"], ord_type, executed, remaining),
        price=dec(obj.get("price")) if ord_type == "limit" else None,
        quantity=volume,
        filled_quantity=executed,
        average_price=avg,
        fee=paid_fee,
        fills=fills,
        raw=obj,
        created_ms=iso_ms(obj.get("created_at")),
    )


def parse_upbit_my_order(msg: dict[str, Any], venue: str = "upbit") -> OrderUpdate:
    """Upbit (and Bithumb v1) ``myOrder`` frame -> OrderUpdate (``fill`` on state ``trade``)."""
    state, ord_type = msg["state"], msg["order_type"]
    executed = dec(msg.get("executed_volume")) or ZERO
    remaining = dec(msg.get("remaining_volume"))
    fill = None
    if state == "trade":
        fill = FillInfo(trade_id=str(msg["trade_uuid"]), price=dec(msg["price"]),
                        quantity=dec(msg["volume"]), fee=dec(msg.get("trade_fee")),
                        fee_asset=msg["code"].partition("-")[0],
                        ts_ms=int(msg.get("trade_timestamp") or msg["timestamp"]),
                        is_maker=msg.get("is_maker"))
    quantity = executed + remaining if state == "trade" and remaining is not None \
        else dec(msg.get("volume"))
    order = OrderInfo(
        exchange_order_id=str(msg["uuid"]), client_order_id=msg.get("identifier"),
        symbol=msg["code"], side="buy" if msg["ask_bid"] == "BID" else "sell",
        type="limit" if ord_type == "limit" else "market",
        status=_status(state, ord_type, executed, remaining),
        price=dec(msg.get("price")) if ord_type == "limit" and state != "trade" else None,
        quantity=quantity, filled_quantity=executed, average_price=dec(msg.get("avg_price")),
        fee=dec(msg.get("paid_fee")), fills=[fill] if fill else [], raw=msg,
        created_ms=msg.get("order_timestamp"))
    return OrderUpdate(venue=venue, order=order, fill=fill, ts_ms=int(msg["timestamp"]))


def parse_bithumb_my_order_v2(msg: dict[str, Any], venue: str = "bithumb") -> OrderUpdate:
    """Bithumb private WS v2 ``myOrder`` (``order_id``, ``side`` buy/sell, ``*_quantity``)."""
    state, ord_type = msg["state"], msg["order_type"]
    executed = dec(msg.get("executed_quantity")) or ZERO
    remaining = dec(msg.get("remaining_quantity"))
    fill = None
    if state == "trade" and msg.get("trade_id"):
        fill = FillInfo(trade_id=str(msg["trade_id"]), price=dec(msg["trade_price"]),
                        quantity=dec(msg["trade_quantity"]), fee=None,
                        fee_asset=msg["code"].partition("-")[0],
                        ts_ms=int(msg.get("trade_timestamp") or msg["timestamp"]))
    avg = None
    if executed and dec(msg.get("executed_amount")):
        avg = dec(msg["executed_amount"]) / executed
    order = OrderInfo(
        exchange_order_id=str(msg["order_id"]), client_order_id=msg.get("client_order_id"),
        symbol=msg["code"], side="buy" if msg["side"] == "buy" else "sell",
        type="limit" if ord_type == "limit" else "market",
        status=_status(state, ord_type, executed, remaining),
        price=dec(msg.get("order_price")) if ord_type == "limit" else None,
        quantity=dec(msg.get("order_quantity")), filled_quantity=executed,
        average_price=avg, fee=dec(msg.get("paid_fee")), fills=[fill] if fill else [],
        raw=msg, created_ms=msg.get("order_timestamp"))
    return OrderUpdate(venue=venue, order=order, fill=fill, ts_ms=int(msg["timestamp"]))


def parse_my_asset(msg: dict[str, Any], venue: str) -> BalanceUpdate:
    return BalanceUpdate(venue=venue, balances=parse_balances(msg["assets"]),
                         ts_ms=int(msg.get("asset_timestamp") or msg["timestamp"]))


def parse_ws_private(frame: Any, venue: str) -> list[OrderUpdate | BalanceUpdate]:
    """One private frame (decoded dict or JSON text) -> order/balance updates."""
    msg = as_object(frame)
    kind = msg.get("type")
    if kind == "myOrder":
        if "order_id" in msg:
            return [parse_bithumb_my_order_v2(msg, venue)]
        return [parse_upbit_my_order(msg, venue)]
    if kind == "myAsset":
        return [parse_my_asset(msg, venue)]
    check_ws_error(msg, venue)
    if "status" in msg or kind:
        return []
    raise ValueError("frame has neither type nor status")
