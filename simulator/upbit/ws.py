"""Upbit WebSockets: ``/websocket/v1`` (trade, ticker, candle.*, orderbook) and
``/websocket/v1/private`` (myOrder, myAsset), with binary frames as the venue sends them.

Subscribe with one JSON array ``[{ticket}, {type, codes, ...}, {format}]``; a text ``PING``
gets ``{"status":"UP"}`` (a text frame), repeated every ``status_interval_s`` (10 s) from then on
as the venue's connection-management page shows (``PING`` → ``UP``, ``UP``, …). A client that
never sends ``PING`` never gets a status frame: every frame it sees is binary JSON. A connection
that sends nothing (no message, no ping frame) for ``idle_timeout_s`` (120 s) is closed.
"""

from __future__ import annotations

import json
import time

import numpy as np
from aiohttp import web

from simulator.accounts import Account, Order, listen
from simulator.auth import AuthError
from simulator.market import Frame
from simulator.streams import Connection, serve
from simulator.upbit.format import (
    candle_row,
    initial_lock,
    order_state,
    orderbook_json,
    sequential_ids,
    ws_ticker,
)
from simulator.venue import num, utc_naive

CANDLE_TYPES = {"candle.1s": Frame("s")} | {
    f"candle.{n}m": Frame("m", n) for n in (1, 3, 5, 10, 15, 30, 60, 240)
}
PUBLIC_TYPES = {"trade", "ticker", "orderbook", *CANDLE_TYPES}
PRIVATE_TYPES = {"myOrder", "myAsset"}


def _error(name: str, message: str) -> dict:
    return {"error": {"name": name, "message": message}}


class UpbitStreams:
    status_interval_s = 10.0
    idle_timeout_s = 120.0
    public_types = PUBLIC_TYPES  # Bithumb: no candle types

    def __init__(self, venue) -> None:
        self.venue = venue
        self.public_conns: set[Connection] = set()
        self.private_conns: set[Connection] = set()
        listen(venue.accounts.values(), self._on_account)

    # ---- connections --------------------------------------------------------------------------

    async def public(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self.public_conns, self.public_types, None)

    async def private(self, request: web.Request) -> web.StreamResponse:
        try:
            key = self.venue.jwt.verify(request.headers.get("Authorization"), "")
        except AuthError as exc:
            return web.json_response(_error("INVALID_AUTH", exc.message), status=401)
        return await self._serve(request, self.private_conns, PRIVATE_TYPES, key)

    async def _serve(self, request, conns, allowed, key):
        def on_open(conn: Connection) -> None:
            conn.state.update(subs={}, key=key, allowed=allowed, last_candle={})

        return await serve(
            request,
            self.venue.sockets,
            conns,
            binary=True,
            autoping=False,
            on_text=self._on_text,
            periodic=self._status,
            every_s=self.status_interval_s,
            idle_timeout_s=self.idle_timeout_s,
            on_open=on_open,
        )

    def _status(self, conn: Connection) -> None:
        if conn.state.get("pinged"):  # never unasked
            conn.send({"status": "UP"}, text=True)

    def _on_text(self, conn: Connection, text: str) -> None:
        if text.strip() == "PING":
            conn.state["pinged"] = True
            conn.send({"status": "UP"}, text=True)
            return
        try:
            request = json.loads(text)
        except json.JSONDecodeError:
            conn.send(_error("WRONG_FORMAT", "요청 형식이 올바르지 않습니다."))
            return
        if not isinstance(request, list) or not all(isinstance(x, dict) for x in request):
            conn.send(_error("WRONG_FORMAT", "요청은 JSON 배열이어야 합니다."))
            return
        if not request or "ticket" not in request[0]:
            conn.send(_error("NO_TICKET", "ticket 이 없습니다."))
            return
        fmt_obj = next((x for x in request if "format" in x), {"format": "DEFAULT"})
        if fmt_obj["format"] != "DEFAULT":
            conn.send(_error("INVALID_PARAM", "the simulator sends the DEFAULT format only"))
            return
        types = [x for x in request[1:] if "type" in x]
        if not types:
            conn.send(_error("NO_TYPE", "type 이 없습니다."))
            return
        subs = {}
        for item in types:
            kind = item["type"]
            if kind not in conn.state["allowed"]:
                conn.send(_error("INVALID_PARAM", f"unknown type {kind}"))
                return
            codes = item.get("codes")
            if kind == "myAsset" and codes is not None:
                conn.send(_error("WRONG_FORMAT", "myAsset does not take codes"))
                return
            if kind in PUBLIC_TYPES and not codes:
                conn.send(_error("NO_CODES", "codes 가 없습니다."))
                return
            codes = [c.split(".")[0] for c in codes or []]
            if any(c != c.upper() or c not in self.venue.markets for c in codes):
                conn.send(_error("INVALID_PARAM", "codes must be listed upper-case market codes"))
                return
            subs[kind] = {
                "codes": set(codes) or None,
                "realtime": item.get("is_only_realtime", item.get("isOnlyRealtime", False)),
                "snapshot": item.get("is_only_snapshot", item.get("isOnlySnapshot", False)),
            }
        conn.state["subs"] = subs  # a new array replaces the previous subscription
        for kind, sub in subs.items():
            if sub["realtime"] or kind in PRIVATE_TYPES:
                continue
            for code in sub["codes"]:
                self._snapshot(conn, kind, self.venue.markets[code])

    # ---- public frames ------------------------------------------------------------------------

    def _snapshot(self, conn: Connection, kind: str, market) -> None:
        if market.visible == 0:
            return
        if kind == "trade":
            conn.send(self._trade_frame(market, market.trades(market.visible - 1), 0, "SNAPSHOT"))
        elif kind == "ticker":
            conn.send(ws_ticker(market, self.venue.now(), "SNAPSHOT"))
        elif kind == "orderbook":
            conn.send(self._book_frame(market, "SNAPSHOT"))
        else:
            conn.send(self._candle_frame(kind, market, "SNAPSHOT"))

    def _trade_frame(self, market, t: dict, i: int, stream_type: str) -> dict:
        ts_ms = int(t["ts"][i])
        bid, ask = self.venue.engine.quote_prices(market.symbol)
        prev = ws_prev_close(market, ts_ms)
        price = float(t["price"][i])
        change = price - prev
        return {
            "type": "trade",
            "code": market.symbol,
            "timestamp": self.venue.now(),
            "trade_date": utc_naive(ts_ms)[:10],
            "trade_time": utc_naive(ts_ms)[11:],
            "trade_timestamp": ts_ms,
            "trade_price": price,
            "trade_volume": num(t["qty"][i]),
            "ask_bid": "ASK" if t["buyer_maker"][i] else "BID",
            "prev_closing_price": prev,
            "change": "RISE" if change > 0 else "FALL" if change < 0 else "EVEN",
            "change_price": abs(change),
            "sequential_id": int(sequential_ids(t["ts"][i : i + 1], t["id"][i : i + 1])[0]),
            "best_ask_price": float(ask),
            "best_ask_size": market.spec.volume_1m,
            "best_bid_price": float(bid),
            "best_bid_size": market.spec.volume_1m,
            "stream_type": stream_type,
        }

    def _candle_frame(self, kind: str, market, stream_type: str) -> dict:
        frame = CANDLE_TYPES[kind]
        last_ts = int(market.trades(market.visible - 1)["ts"][0])
        start = int(frame.start(np.array([last_ts]))[0])
        arrays = market.candles(frame, start_ms=start)
        row = candle_row(market.symbol, frame, arrays, len(arrays) - 1, None)
        row.pop("market")
        row.pop("unit", None)
        return {"type": kind, "code": market.symbol, **row, "stream_type": stream_type}

    def _book_frame(self, market, stream_type: str) -> dict:
        book = orderbook_json(self.venue, market, 15)
        book.pop("market")
        return {"type": "orderbook", "code": market.symbol, **book, "stream_type": stream_type}

    def on_trades(self, symbol: str, trades: dict) -> None:
        market = self.venue.markets[symbol]
        now_s = time.monotonic()
        for conn in list(self.public_conns):
            for kind, sub in conn.state.get("subs", {}).items():
                if sub["snapshot"] or symbol not in sub["codes"]:
                    continue
                if kind == "trade":
                    for i in range(len(trades["ts"])):
                        conn.send(self._trade_frame(market, trades, i, "REALTIME"))
                elif kind == "ticker":
                    conn.send(ws_ticker(market, self.venue.now(), "REALTIME"))
                elif kind == "orderbook":
                    conn.send(self._book_frame(market, "REALTIME"))
                else:  # candles: at most one frame per second per type and code
                    last = conn.state["last_candle"]
                    if now_s - last.get((kind, symbol), -1.0) >= 1.0:
                        last[(kind, symbol)] = now_s
                        conn.send(self._candle_frame(kind, market, "REALTIME"))

    # ---- private frames -----------------------------------------------------------------------

    def _on_account(self, account: Account, kind: str, event: dict) -> None:
        targets = [c for c in self.private_conns if c.state.get("key") == account.key]
        if not targets:
            return
        if kind == "balance":
            frame = {
                "type": "myAsset",
                "asset_uuid": account.key[:8] + "-asset",
                "assets": [
                    {
                        "currency": a,
                        "balance": self.asset_amount(account.free(a)),
                        "locked": self.asset_amount(account.locked(a)),
                    }
                    for a in event["assets"]
                ],
                "asset_timestamp": self.venue.now(),
                "timestamp": self.venue.now(),
                "stream_type": "REALTIME",
            }
            frames = [("myAsset", None, frame)]
        else:
            order, fill = event["order"], event["fill"]
            frames = []
            if fill is not None:
                frames.append(("myOrder", order.symbol, self._my_order(order, fill, "trade")))
            frames.append(
                ("myOrder", order.symbol, self._my_order(order, None, order_state(order)))
            )
        for conn in targets:
            subs = conn.state.get("subs", {})
            for kind_, code, frame in frames:
                sub = subs.get(kind_)
                if sub is not None and (sub["codes"] is None or code in sub["codes"]):
                    conn.send(frame)

    @staticmethod
    def asset_amount(value):
        """A myAsset amount: a JSON number on Upbit (Bithumb sends strings)."""
        return float(value)

    def _my_order(self, order: Order, fill, state: str) -> dict:
        fee = self.venue.fee
        lock0, reserved = initial_lock(order, fee)
        executed = order.executed_qty
        funds = order.executed_quote
        paid = order.paid_fee
        avg = float(funds / executed) if executed else 0.0
        locked = (
            0.0
            if state in ("done", "cancel")
            else float(lock0 - (funds + paid if order.side == "buy" else executed))
        )
        return {
            "type": "myOrder",
            "code": order.symbol,
            "uuid": order.uuid,
            "ask_bid": "BID" if order.side == "buy" else "ASK",
            "order_type": order.extra["ord_type"],
            "state": state,
            "trade_uuid": fill.uuid if fill else None,
            "price": float(fill.price if fill else order.extra.get("input_price") or 0),
            "avg_price": avg,
            "volume": float(order.qty) if order.qty is not None else None,
            "remaining_volume": float(order.qty - executed) if order.qty is not None else None,
            "executed_volume": float(executed),
            "trades_count": len(order.fills),
            "reserved_fee": float(reserved),
            "remaining_fee": float(max(reserved - paid, 0)),
            "paid_fee": float(paid),
            "locked": locked,
            "executed_funds": float(funds),
            "time_in_force": order.time_in_force,
            "trade_fee": float(fill.fee) if fill else None,
            "is_maker": fill.is_maker if fill else None,
            "identifier": order.client_id,
            "smp_type": None,
            "prevented_volume": 0.0,
            "prevented_locked": 0.0,
            "trade_timestamp": fill.ts_ms if fill else None,
            "order_timestamp": order.created_ms,
            "timestamp": self.venue.now(),
            "stream_type": "REALTIME",
        }


def ws_prev_close(market, ts_ms: int) -> float:
    """Close of the UTC day before ``ts_ms`` (the first price if there is none)."""
    log = market.log
    j = int(np.searchsorted(log.ts[: market.visible], ts_ms - ts_ms % 86_400_000))
    return float(log.price[j - 1]) if j else float(log.price[0])
