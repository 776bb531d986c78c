"""Upbit wire shapes: candles, tickers, trades, order book and orders (REST and WebSocket)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import numpy as np

from simulator.accounts import ZERO, Order
from simulator.market import DAY_MS, CandleArrays, Frame, Market, tick_of
from simulator.venue import fmt, kst_iso, kst_naive, num, utc_naive

STATES = {"open": "wait", "filled": "done", "canceled": "cancel", "expired": "cancel"}


def _date(ts_ms: int, pattern: str, tz=dt.UTC) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz).strftime(pattern)


def candle_row(
    symbol: str, frame: Frame, c: CandleArrays, i: int, prev_close: float | None
) -> dict:
    open_ms = int(c.open_time[i])
    row = {
        "market": symbol,
        "candle_date_time_utc": utc_naive(open_ms),
        "candle_date_time_kst": kst_naive(open_ms),
        "opening_price": float(c.open[i]),
        "high_price": float(c.high[i]),
        "low_price": float(c.low[i]),
        "trade_price": float(c.close[i]),
        "timestamp": int(c.last_ts[i]),
        "candle_acc_trade_price": num(c.quote_volume[i]),
        "candle_acc_trade_volume": num(c.volume[i]),
    }
    if frame.unit == "m":
        row["unit"] = frame.n
    elif frame.unit == "d":
        prev = float(c.open[i]) if prev_close is None else prev_close
        change = float(c.close[i]) - prev
        row |= {
            "prev_closing_price": prev,
            "change_price": change,
            "change_rate": round(change / prev, 10) if prev else 0.0,
        }
    elif frame.unit in ("w", "M", "y"):
        row["first_day_of_period"] = _date(open_ms + frame.zone_ms, "%Y-%m-%d")
    return row


def candle_rows(symbol: str, frame: Frame, arrays: CandleArrays, count: int) -> list[dict]:
    """The newest ``count`` candles, newest first."""
    tail = arrays.tail(count + 1)
    first = max(0, len(tail) - count)
    rows = [
        candle_row(symbol, frame, tail, i, float(tail.close[i - 1]) if i else None)
        for i in range(first, len(tail))
    ]
    return rows[::-1]


def day_stats(market: Market, now_ms: int) -> dict:
    """UTC-day and 24 h figures of a market at ``now_ms``."""
    day = now_ms - now_ms % DAY_MS
    t = market.trades()
    ts, price, qty = t["ts"], t["price"], t["qty"]
    i_day = int(np.searchsorted(ts, day))
    i_24h = int(np.searchsorted(ts, now_ms - DAY_MS, side="right"))
    last = len(ts) - 1
    prev_close = float(price[i_day - 1]) if i_day > 0 else float(price[0])
    today = slice(i_day, len(ts))
    has_today = i_day <= last
    close = float(price[last])
    i_year = int(np.searchsorted(ts, now_ms - 365 * DAY_MS))
    hi_i = i_year + int(np.argmax(price[i_year:]))
    lo_i = i_year + int(np.argmin(price[i_year:]))
    return {
        "open": float(price[i_day]) if has_today else close,
        "high": float(price[today].max()) if has_today else close,
        "low": float(price[today].min()) if has_today else close,
        "close": close,
        "prev_close": prev_close,
        "last_ts": int(ts[last]),
        "last_qty": float(qty[last]),
        "last_ask": bool(t["buyer_maker"][last]),
        "acc_volume": float(qty[today].sum()),
        "acc_price": float((price[today] * qty[today]).sum()),
        "acc_volume_24h": float(qty[i_24h:].sum()),
        "acc_price_24h": float((price[i_24h:] * qty[i_24h:]).sum()),
        "acc_ask_volume": float(qty[today][t["buyer_maker"][today]].sum()),
        "acc_bid_volume": float(qty[today][~t["buyer_maker"][today]].sum()),
        "high_52": float(price[hi_i]),
        "high_52_date": _date(int(ts[hi_i]), "%Y-%m-%d"),
        "low_52": float(price[lo_i]),
        "low_52_date": _date(int(ts[lo_i]), "%Y-%m-%d"),
    }


def ticker_json(market: Market, now_ms: int) -> dict:
    s = day_stats(market, now_ms)
    change_price = s["close"] - s["prev_close"]
    change = "RISE" if change_price > 0 else "FALL" if change_price < 0 else "EVEN"
    rate = round(change_price / s["prev_close"], 10) if s["prev_close"] else 0.0
    return {
        "market": market.symbol,
        "trade_date": _date(s["last_ts"], "%Y%m%d"),
        "trade_time": _date(s["last_ts"], "%H%M%S"),
        "trade_date_kst": _date(s["last_ts"], "%Y%m%d", _KST),
        "trade_time_kst": _date(s["last_ts"], "%H%M%S", _KST),
        "trade_timestamp": s["last_ts"],
        "opening_price": s["open"],
        "high_price": s["high"],
        "low_price": s["low"],
        "trade_price": s["close"],
        "prev_closing_price": s["prev_close"],
        "change": change,
        "change_price": abs(change_price),
        "change_rate": abs(rate),
        "signed_change_price": change_price,
        "signed_change_rate": rate,
        "trade_volume": num(s["last_qty"]),
        "acc_trade_price": num(s["acc_price"]),
        "acc_trade_price_24h": num(s["acc_price_24h"]),
        "acc_trade_volume": num(s["acc_volume"]),
        "acc_trade_volume_24h": num(s["acc_volume_24h"]),
        "highest_52_week_price": s["high_52"],
        "highest_52_week_date": s["high_52_date"],
        "lowest_52_week_price": s["low_52"],
        "lowest_52_week_date": s["low_52_date"],
        "timestamp": now_ms,
    }


def ws_ticker(market: Market, now_ms: int, stream_type: str) -> dict:
    row = ticker_json(market, now_ms)
    s = day_stats(market, now_ms)
    row.pop("market")
    for key in ("trade_date_kst", "trade_time_kst"):
        row.pop(key)
    return {
        "type": "ticker",
        "code": market.symbol,
        **row,
        "ask_bid": "ASK" if s["last_ask"] else "BID",
        "acc_ask_volume": num(s["acc_ask_volume"]),
        "acc_bid_volume": num(s["acc_bid_volume"]),
        "market_state": "ACTIVE",
        "is_trading_suspended": False,
        "delisting_date": None,
        "market_warning": "NONE",
        "stream_type": stream_type,
    }


def sequential_ids(ts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return ts * 10_000 + ids % 10_000


def trade_rows(market: Market, count: int, cursor: int | None) -> list[dict]:
    """Newest first; ``cursor`` (a sequential_id) returns the trades before it."""
    t = market.trades()
    seq = sequential_ids(t["ts"], t["id"])
    hi = len(seq) if cursor is None else int(np.searchsorted(seq, cursor, side="left"))
    lo = max(0, hi - count)
    rows = []
    for i in range(hi - 1, lo - 1, -1):
        ts_ms = int(t["ts"][i])
        day = ts_ms - ts_ms % DAY_MS
        j = int(np.searchsorted(t["ts"], day))
        prev = float(t["price"][j - 1]) if j else float(t["price"][0])
        price = float(t["price"][i])
        rows.append(
            {
                "market": market.symbol,
                "trade_date_utc": _date(ts_ms, "%Y-%m-%d"),
                "trade_time_utc": _date(ts_ms, "%H:%M:%S"),
                "timestamp": ts_ms,
                "trade_price": price,
                "trade_volume": num(t["qty"][i]),
                "prev_closing_price": prev,
                "change_price": price - prev,
                "ask_bid": "ASK" if t["buyer_maker"][i] else "BID",
                "sequential_id": int(seq[i]),
            }
        )
    return rows


def krw_number(price: Decimal) -> int | float:
    """A KRW price as the venue writes it in the order book: an integer when it is whole
    (``103460000``, not ``103460000.0``), a fraction only below the 1-KRW tick."""
    return int(price) if price == price.to_integral_value() else float(price)


def orderbook_json(venue, market: Market, depth: int) -> dict:
    bid, ask = venue.engine.quote_prices(market.symbol)
    tick = Decimal(repr(tick_of(market.spec, market.last_price)))
    now = venue.now()
    rng = random.Random(f"{venue.ctx.seed}:{market.symbol}:{now // 1000}")
    units = []
    for i in range(depth):
        units.append(
            {
                "ask_price": krw_number(ask + tick * i),
                "bid_price": krw_number(bid - tick * i),
                "ask_size": round(rng.uniform(0.05, 2.0) * market.spec.volume_1m, 8),
                "bid_size": round(rng.uniform(0.05, 2.0) * market.spec.volume_1m, 8),
            }
        )
    return {
        "market": market.symbol,
        "timestamp": now,
        "total_ask_size": round(sum(u["ask_size"] for u in units), 8),
        "total_bid_size": round(sum(u["bid_size"] for u in units), 8),
        "orderbook_units": units,
        "level": 0,
    }


def order_state(order: Order) -> str:
    if order.extra.get("ord_type") == "price" and order.status != "open":
        return "cancel"  # a market buy ends in cancel, as the venue does
    return STATES[order.status]


def initial_lock(order: Order, fee: Decimal) -> tuple[Decimal, Decimal]:
    """(locked, reserved_fee) when the order was accepted."""
    if order.side == "sell":
        return order.qty, ZERO
    total = order.quote_qty if order.quote_qty is not None else order.price * order.qty
    return total * (1 + fee), total * fee


def order_json(
    order: Order,
    fee: Decimal,
    *,
    created: bool = False,
    with_trades: bool = False,
    client_key: str = "identifier",
) -> dict:
    """The REST order object; ``created`` renders it as accepted (state wait, nothing filled).
    ``client_key``: the client order id's name (Upbit ``identifier``, Bithumb
    ``client_order_id``)."""
    ord_type = order.extra["ord_type"]
    lock0, reserved = initial_lock(order, fee)
    fills = [] if created else order.fills
    executed = sum((f.qty for f in fills), ZERO)
    paid = sum((f.fee for f in fills), ZERO)
    spent = sum((f.quote for f in fills), ZERO)
    state = "wait" if created else order_state(order)
    if created or state == "wait":
        locked = lock0 - (spent + paid if order.side == "buy" else executed)
    elif ord_type == "price":
        locked = lock0 - spent - paid
    else:
        locked = ZERO
    row = {
        "uuid": order.uuid,
        "side": "bid" if order.side == "buy" else "ask",
        "ord_type": ord_type,
    }
    if ord_type in ("limit", "price"):
        row["price"] = fmt(order.extra["input_price"])
    row |= {"state": state, "market": order.symbol, "created_at": kst_iso(order.created_ms)}
    if ord_type != "price":
        remaining = ZERO if state == "done" else order.qty - executed
        row |= {"volume": fmt(order.qty), "remaining_volume": fmt(remaining)}
    if ord_type != "price":
        row["prevented_volume"] = "0"
    remaining_fee = ZERO if state == "done" else reserved - paid
    row |= {
        "reserved_fee": fmt(reserved),
        "remaining_fee": fmt(max(remaining_fee, ZERO)),
        "paid_fee": fmt(paid),
        "locked": fmt(locked),
        "prevented_locked": "0",
        "executed_volume": fmt(executed),
        "executed_funds": fmt(spent),
        "trades_count": len(fills),
    }
    if order.client_id is not None:
        row[client_key] = order.client_id
    if order.time_in_force:
        row["time_in_force"] = order.time_in_force
    if with_trades:
        row["trades"] = [
            {
                "market": order.symbol,
                "uuid": f.uuid,
                "price": fmt(f.price),
                "volume": fmt(f.qty),
                "funds": fmt(f.quote),
                "trend": "up" if order.side == "buy" else "down",
                "created_at": kst_iso(f.ts_ms),
                "side": row["side"],
            }
            for f in fills
        ]
    return row


_KST = dt.timezone(dt.timedelta(hours=9))
