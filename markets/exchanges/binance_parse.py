"""Pure parsers for Binance spot and USDⓈ-M futures payloads. Venue field names stop here.

Binance sends prices and quantities as strings: floats for market data, ``Decimal`` for money.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from markets.candle_contract import DroppedCandles, candle_problem, keep_valid

from .base import (
    CANCELLED,
    EXPIRED,
    FILLED,
    NEW,
    OPEN,
    PARTIALLY_FILLED,
    REJECTED,
    STOP_FINISHED,
    STOP_LOSS,
    STOP_OPEN,
    STOP_TRIGGERED,
    TAKE_PROFIT,
    Balance,
    BalanceUpdate,
    CandleRow,
    FillInfo,
    Kline,
    MarkPrice,
    OrderInfo,
    OrderUpdate,
    PositionInfo,
    PositionUpdate,
    StopInfo,
    StopUpdate,
    StreamNotice,
    SymbolInfo,
    Trade,
)
from .binance_mark import parse_mark_price_event
from .errors import AuthenticationError, StreamRestart
from .kr_parse import as_object, dec

log = logging.getLogger(__name__)

ZERO = Decimal(0)

STATUS = {
    "NEW": OPEN, "PENDING_NEW": NEW, "PARTIALLY_FILLED": PARTIALLY_FILLED, "FILLED": FILLED,
    "CANCELED": CANCELLED, "PENDING_CANCEL": OPEN, "REJECTED": REJECTED, "EXPIRED": EXPIRED,
    "EXPIRED_IN_MATCH": EXPIRED,
}
INTERVAL_TO_TIMEFRAME = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m",
                         "1h": "1h", "4h": "4h", "1d": "1d"}


def parse_klines(rows: list[list[Any]], timeframe: str | None = None, *, venue: str = "",
                 symbol: str = "", dropped: DroppedCandles | None = None) -> list[CandleRow]:
    """REST klines (12-element arrays, oldest first) -> CandleRows. Rows that break the candle
    contract (:mod:`markets.candle_contract`: NaN, close above high, an open time off
    ``timeframe``'s grid ...) are logged, counted in ``dropped`` and never returned."""
    out = [CandleRow(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                     float(r[5]), float(r[7])) for r in rows]
    return keep_valid(out, timeframe, venue=venue, symbol=symbol, dropped=dropped)


def parse_trade(msg: dict[str, Any]) -> Trade:
    """``trade`` or ``aggTrade`` event -> Trade; ``m`` (buyer is maker) means a taker sell."""
    trade_id = msg["t"] if "t" in msg else msg["a"]
    if msg["e"] not in ("trade", "aggTrade"):
        raise ValueError(f"not a trade event: {msg['e']!r}")
    price, qty = float(msg["p"]), float(msg["q"])
    if not (price > 0 and qty > 0):
        raise ValueError(f"bad trade price/quantity {price!r}/{qty!r}")
    # Positional on purpose: this runs per message and keywords cost twice as much.
    return Trade(msg["s"], str(trade_id), int(msg["T"]), price, qty,
                 "sell" if msg["m"] else "buy")


def parse_kline_event(msg: dict[str, Any]) -> Kline:
    """``kline`` event -> Kline; an insane one raises ValueError (a bad message)."""
    k = msg["k"]
    timeframe = INTERVAL_TO_TIMEFRAME.get(k["i"])
    problem = candle_problem(CandleRow(int(k["t"]), float(k["o"]), float(k["h"]),
                                       float(k["l"]), float(k["c"]), float(k["v"]),
                                       float(k["q"])), timeframe)
    if problem:
        raise ValueError(f"kline {k.get('s')} {k.get('i')} {k.get('t')}: {problem}")
    return Kline(symbol=k["s"], timeframe=INTERVAL_TO_TIMEFRAME.get(k["i"], k["i"]),
                 open_time_ms=int(k["t"]), open=float(k["o"]), high=float(k["h"]),
                 low=float(k["l"]), close=float(k["c"]), volume=float(k["v"]),
                 quote_volume=float(k["q"]), closed=bool(k["x"]), event_ms=int(msg["E"]))


def parse_ws_market(frame: Any) -> list[Trade | Kline | MarkPrice]:
    """A market-stream frame (raw or ``{"stream","data"}`` combined) -> trades/klines/marks.

    Subscribe replies yield nothing; ``serverShutdown`` asks for a reconnect.
    """
    msg = frame if type(frame) is dict else as_object(frame)
    if "stream" in msg and "data" in msg:
        msg = msg["data"]
    kind = msg.get("e")
    if kind == "trade" or kind == "aggTrade":
        return [parse_trade(msg)]
    if kind == "kline":
        return [parse_kline_event(msg)]
    if kind == "markPriceUpdate":
        return [parse_mark_price_event(msg)]
    if kind == "serverShutdown":
        raise StreamRestart("serverShutdown")
    if "result" in msg and "id" in msg:
        return []
    if "code" in msg:
        raise ValueError(f"error frame {msg.get('code')}: {msg.get('msg')}")
    if kind:
        return []
    raise ValueError("frame without an event type")


def _filters(symbol: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in symbol.get("filters", [])}


def _positive(value: Any) -> Decimal | None:
    number = dec(value)
    return number if number is not None and number > 0 else None


def parse_exchange_info(payload: dict[str, Any], *, futures: bool = False,
                        max_leverage: int = 1) -> list[SymbolInfo]:
    """Tradable symbols with their PRICE_FILTER, LOT_SIZE and (MIN_)NOTIONAL rules."""
    out = []
    for sym in payload["symbols"]:
        if sym.get("status") != "TRADING":
            continue
        if futures and sym.get("contractType", "PERPETUAL") != "PERPETUAL":
            continue
        if not futures and sym.get("isSpotTradingAllowed") is False:
            continue
        f = _filters(sym)
        price_f, lot_f = f.get("PRICE_FILTER", {}), f.get("LOT_SIZE", {})
        if futures:
            min_notional = _positive(f.get("MIN_NOTIONAL", {}).get("notional"))
        else:
            min_notional = _positive(f.get("NOTIONAL", {}).get("minNotional")) or \
                _positive(f.get("MIN_NOTIONAL", {}).get("minNotional"))
        out.append(SymbolInfo(
            code=sym["symbol"], base=sym["baseAsset"], quote=sym["quoteAsset"],
            market_type="perpetual" if futures else "spot",
            tick_size=_positive(price_f.get("tickSize")),
            step_size=_positive(lot_f.get("stepSize")),
            min_qty=_positive(lot_f.get("minQty")), min_notional=min_notional,
            max_leverage=max_leverage if futures else 1,
            min_price=_positive(price_f.get("minPrice"))))
    return out


def _avg(executed: Decimal, quote: Decimal | None) -> Decimal | None:
    return quote / executed if executed and quote else None


def parse_order(obj: dict[str, Any], fills: list[FillInfo] | None = None) -> OrderInfo:
    """Spot or futures REST order (new/query/cancel) -> OrderInfo.

    A cancel response carries our id in ``origClientOrderId``; spot FULL responses carry
    ``fills``; futures report ``avgPrice``/``cumQuote`` instead of ``cummulativeQuoteQty``.
    """
    executed = dec(obj.get("executedQty")) or ZERO
    if fills is None:
        fills = [FillInfo(trade_id=str(f["tradeId"]), price=dec(f["price"]),
                          quantity=dec(f["qty"]), fee=dec(f.get("commission")),
                          fee_asset=f.get("commissionAsset"),
                          ts_ms=int(obj.get("transactTime") or 0))
                 for f in obj.get("fills", [])]
    quote = dec(obj.get("cummulativeQuoteQty")) if "cummulativeQuoteQty" in obj \
        else dec(obj.get("cumQuote"))
    avg = _positive(obj.get("avgPrice")) or _avg(executed, quote)
    fee_assets = {f.fee_asset for f in fills}
    fee = sum((f.fee or ZERO for f in fills), ZERO) if fills and len(fee_assets) == 1 else None
    status = obj.get("status", "NEW")
    if status not in STATUS:
        raise ValueError(f"unknown order status {status!r}")
    otype = obj.get("type", "")
    return OrderInfo(
        exchange_order_id=str(obj["orderId"]),
        client_order_id=obj.get("origClientOrderId") or obj.get("clientOrderId"),
        symbol=obj["symbol"], side="buy" if obj.get("side") == "BUY" else "sell",
        type="limit" if otype in ("LIMIT", "LIMIT_MAKER") else otype.lower() or "market",
        status=STATUS[status], price=_positive(obj.get("price")),
        quantity=dec(obj.get("origQty")), filled_quantity=executed, average_price=avg,
        fee=fee, fills=fills, raw=obj, reduce_only=bool(obj.get("reduceOnly", False)),
        created_ms=obj.get("time") or obj.get("transactTime") or obj.get("updateTime"))


#: Futures algo (conditional) order states -> normalised stop states.
ALGO_STATUS = {
    "NEW": STOP_OPEN, "TRIGGERING": STOP_TRIGGERED, "TRIGGERED": STOP_TRIGGERED,
    "FINISHED": STOP_FINISHED, "CANCELED": CANCELLED, "REJECTED": REJECTED, "EXPIRED": EXPIRED,
}
#: Wire order types of conditional market orders <-> stop kinds.
ALGO_TYPES = {STOP_LOSS: "STOP_MARKET", TAKE_PROFIT: "TAKE_PROFIT_MARKET"}
ALGO_KINDS = {v: k for k, v in ALGO_TYPES.items()} | {"STOP": STOP_LOSS,
                                                       "TAKE_PROFIT": TAKE_PROFIT}


def _algo_status(value: Any) -> str:
    status = ALGO_STATUS.get(str(value or ""))
    if status is None:
        raise ValueError(f"unknown algo order status {value!r}")
    return status


def parse_algo_order(obj: dict[str, Any]) -> StopInfo:
    """``POST``/``GET /fapi/v1/algoOrder`` and ``openAlgoOrders`` rows -> StopInfo.

    A new order reports ``algoStatus`` NEW; a queried one also carries ``actualOrderId`` (""
    until triggered), ``actualPrice`` (average fill price, "0" before) and ``actualQty``."""
    otype = obj.get("orderType") or obj.get("type") or ""
    actual_qty = dec(obj.get("actualQty")) or ZERO
    return StopInfo(
        stop_id=str(obj["algoId"]), client_id=str(obj.get("clientAlgoId") or ""),
        symbol=obj["symbol"], side="buy" if obj.get("side") == "BUY" else "sell",
        kind=ALGO_KINDS.get(otype, otype.lower()), status=_algo_status(obj.get("algoStatus")),
        trigger_price=_positive(obj.get("triggerPrice")), quantity=_positive(obj.get("quantity")),
        order_id=str(obj.get("actualOrderId") or ""), filled_quantity=actual_qty,
        average_price=_positive(obj.get("actualPrice")), raw=obj,
        updated_ms=obj.get("updateTime") or obj.get("createTime"))


def parse_algo_update(ev: dict[str, Any]) -> StopUpdate:
    """Futures ``ALGO_UPDATE``: ``o.caid`` client algo id, ``aid`` algo id, ``o`` order type,
    ``X`` algo status, ``ai`` the triggered order's id ("" before), ``ap``/``aq`` its average
    price and executed quantity. The trigger price key (``tp``) is [UNCONFIRMED]: read if
    present."""
    o = ev["o"]
    otype = o.get("o", "")
    stop = StopInfo(
        stop_id=str(o["aid"]), client_id=str(o.get("caid") or ""), symbol=o["s"],
        side="buy" if o.get("S") == "BUY" else "sell", kind=ALGO_KINDS.get(otype, otype.lower()),
        status=_algo_status(o.get("X")), trigger_price=_positive(o.get("tp")),
        quantity=_positive(o.get("q")), order_id=str(o.get("ai") or ""),
        filled_quantity=dec(o.get("aq")) or ZERO, average_price=_positive(o.get("ap")), raw=ev,
        updated_ms=int(ev.get("E") or ev.get("T") or 0))
    return StopUpdate(venue="binance_futures", stop=stop, ts_ms=int(ev.get("E") or 0))


def parse_my_trades(rows: list[dict[str, Any]]) -> list[FillInfo]:
    """Spot ``myTrades`` / futures ``userTrades`` rows -> fills."""
    return [FillInfo(trade_id=str(r["id"]), price=dec(r["price"]), quantity=dec(r["qty"]),
                     fee=dec(r.get("commission")), fee_asset=r.get("commissionAsset"),
                     ts_ms=int(r["time"]), is_maker=r.get("isMaker", r.get("maker")))
            for r in rows]


def parse_spot_balances(payload: dict[str, Any]) -> list[Balance]:
    return [Balance(b["asset"], dec(b["free"]) or ZERO, dec(b["locked"]) or ZERO)
            for b in payload["balances"]]


def parse_futures_balances(rows: list[dict[str, Any]]) -> list[Balance]:
    """``/fapi/v3/balance``: free = availableBalance, locked = wallet balance - available."""
    out = []
    for r in rows:
        total, free = dec(r["balance"]) or ZERO, dec(r.get("availableBalance")) or ZERO
        out.append(Balance(r["asset"], free, max(total - free, ZERO)))
    return out


def _position_side(amount: Decimal, position_side: str) -> str:
    if amount == 0:
        return "flat"
    if position_side in ("LONG", "SHORT"):
        return position_side.lower()
    return "long" if amount > 0 else "short"


def parse_position_risk(rows: list[dict[str, Any]]) -> list[PositionInfo]:
    """``/fapi/v2/positionRisk`` rows -> PositionInfo (flat rows included; filter if needed)."""
    out = []
    for r in rows:
        amount = dec(r["positionAmt"]) or ZERO
        out.append(PositionInfo(
            symbol=r["symbol"], side=_position_side(amount, r.get("positionSide", "BOTH")),
            quantity=amount, entry_price=dec(r["entryPrice"]) or ZERO,
            leverage=int(r.get("leverage") or 1), margin_type=r.get("marginType", ""),
            unrealized_pnl=dec(r.get("unRealizedProfit")) or ZERO,
            liquidation_price=_positive(r.get("liquidationPrice")),
            mark_price=_positive(r.get("markPrice")),
            position_side=r.get("positionSide", "BOTH")))
    return out


def parse_execution_report(ev: dict[str, Any]) -> OrderUpdate:
    """Spot ``executionReport`` -> OrderUpdate (``fill`` when ``x`` == TRADE)."""
    fill = None
    if ev["x"] == "TRADE":
        fill = FillInfo(trade_id=str(ev["t"]), price=dec(ev["L"]), quantity=dec(ev["l"]),
                        fee=dec(ev.get("n")), fee_asset=ev.get("N"), ts_ms=int(ev["T"]),
                        is_maker=ev.get("m"))
    executed = dec(ev["z"]) or ZERO
    order = OrderInfo(
        exchange_order_id=str(ev["i"]),
        client_order_id=ev.get("C") or ev["c"] if ev["x"] == "CANCELED" else ev["c"],
        symbol=ev["s"], side="buy" if ev["S"] == "BUY" else "sell",
        type="limit" if ev["o"] in ("LIMIT", "LIMIT_MAKER") else ev["o"].lower(),
        status=STATUS[ev["X"]], price=_positive(ev.get("p")), quantity=dec(ev.get("q")),
        filled_quantity=executed, average_price=_avg(executed, dec(ev.get("Z"))),
        fee=None, fills=[fill] if fill else [], raw=ev, created_ms=ev.get("O"))
    return OrderUpdate(venue="binance_spot", order=order, fill=fill, ts_ms=int(ev["E"]))


def parse_order_trade_update(ev: dict[str, Any]) -> OrderUpdate:
    """Futures ``ORDER_TRADE_UPDATE`` -> OrderUpdate (``fill`` when ``x`` == TRADE)."""
    o = ev["o"]
    fill = None
    if o["x"] == "TRADE":
        fill = FillInfo(trade_id=str(o["t"]), price=dec(o["L"]), quantity=dec(o["l"]),
                        fee=dec(o.get("n")), fee_asset=o.get("N"), ts_ms=int(o["T"]),
                        is_maker=o.get("m"))
    order = OrderInfo(
        exchange_order_id=str(o["i"]), client_order_id=o["c"], symbol=o["s"],
        side="buy" if o["S"] == "BUY" else "sell",
        type="limit" if o["o"] == "LIMIT" else o["o"].lower(), status=STATUS[o["X"]],
        price=_positive(o.get("p")), quantity=dec(o.get("q")),
        filled_quantity=dec(o["z"]) or ZERO, average_price=_positive(o.get("ap")),
        fee=None, fills=[fill] if fill else [], raw=ev, reduce_only=bool(o.get("R")))
    return OrderUpdate(venue="binance_futures", order=order, fill=fill, ts_ms=int(ev["E"]))


def parse_account_update(ev: dict[str, Any]) -> list[BalanceUpdate | PositionUpdate]:
    """Futures ``ACCOUNT_UPDATE`` -> balance update (wallet ``wb``; cross wallet ``cw`` as
    free is not implied, so locked is reported 0) and position update (changed rows only)."""
    a, ts = ev["a"], int(ev["E"])
    out: list[BalanceUpdate | PositionUpdate] = []
    if a.get("B"):
        out.append(BalanceUpdate(venue="binance_futures", ts_ms=ts, wallet_totals=True, balances=[
            Balance(b["a"], dec(b["wb"]) or ZERO, ZERO) for b in a["B"]]))
    if a.get("P"):
        positions = []
        for p in a["P"]:
            amount = dec(p["pa"]) or ZERO
            positions.append(PositionInfo(
                symbol=p["s"], side=_position_side(amount, p.get("ps", "BOTH")),
                quantity=amount, entry_price=dec(p["ep"]) or ZERO, leverage=0,
                margin_type=p.get("mt", ""), unrealized_pnl=dec(p.get("up")) or ZERO,
                position_side=p.get("ps", "BOTH")))
        out.append(PositionUpdate(venue="binance_futures", positions=positions,
                                  reason=a.get("m", ""), ts_ms=ts))
    return out


_AUTH_CODES = {-1022, -2014, -2015, -2028}


def parse_ws_spot_user(frame: Any) -> list[Any]:
    """Spot WebSocket-API frame -> user events. ``{"subscriptionId","event"}`` envelopes carry
    events; a subscribe reply yields a ``subscribed`` notice (re-sync from REST)."""
    msg = as_object(frame)
    if "event" in msg:
        ev = msg["event"]
        kind = ev.get("e")
        if kind == "executionReport":
            return [parse_execution_report(ev)]
        if kind == "outboundAccountPosition":
            return [BalanceUpdate(venue="binance_spot", ts_ms=int(ev["E"]), balances=[
                Balance(b["a"], dec(b["f"]) or ZERO, dec(b["l"]) or ZERO) for b in ev["B"]])]
        if kind == "eventStreamTerminated":
            raise StreamRestart("eventStreamTerminated", (StreamNotice(
                "binance_spot", "stream_terminated", int(ev["E"])),))
        return []
    if "status" in msg and "id" in msg:
        if msg["status"] == 200:
            return [StreamNotice("binance_spot", "subscribed", 0, json.dumps(msg["result"]))]
        err = msg.get("error") or {}
        code = err.get("code")
        if code in _AUTH_CODES:
            raise AuthenticationError(f"binance_spot: {code} {err.get('msg')}",
                                      venue="binance_spot", code=code,
                                      venue_message=err.get("msg", ""))
        raise ValueError(f"WebSocket API error {code}: {err.get('msg')}")
    raise ValueError("frame is neither an event nor a response")


def parse_ws_futures_user(frame: Any) -> list[Any]:
    """Futures private-stream frame -> user events; ``listenKeyExpired`` -> notice."""
    msg = as_object(frame)
    if "data" in msg and "stream" in msg:
        msg = msg["data"]
    kind = msg.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        return [parse_order_trade_update(msg)]
    if kind == "ACCOUNT_UPDATE":
        return parse_account_update(msg)
    if kind == "ALGO_UPDATE":
        return [parse_algo_update(msg)]
    if kind == "listenKeyExpired":
        raise StreamRestart("listenKeyExpired", (StreamNotice(
            "binance_futures", "listen_key_expired", int(msg["E"])),))
    if kind:
        return []
    raise ValueError("frame without an event type")
