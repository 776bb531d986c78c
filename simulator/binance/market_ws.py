"""Binance market streams, spot and futures alike: raw ``/ws/<streams>``, combined
``/stream?streams=`` with ``{"stream","data"}``, live SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS, trade and aggTrade events, klines pushed with the ``k.x`` closed flag;
tickers and book streams: :mod:`simulator.binance.book_ws`.

A raw path segment without ``@`` (``/ws/0``, as clients open a connection to SUBSCRIBE on
later) names no stream and is accepted with no subscription; a name with ``@`` that is not a
stream (unknown symbol or kind, or a stream of the other futures route) is refused with 400.
Futures' ``/public`` route carries ``<s>@trade`` besides the book streams (ccxt 4.5 and the
venue's 2026 split); ``aggTrade`` and the rest are on ``/market``. Futures trade events have no
``M`` field."""

from __future__ import annotations

import json
import time

import numpy as np
from aiohttp import web

from simulator.binance.book_ws import BookStreams, book_kind
from simulator.binance.protocol import berror, fill_gaps
from simulator.streams import Connection, serve


class MarketStreams(BookStreams):
    """A mixin of :class:`simulator.binance.common.BinanceBase` (``markets``, ``sockets``,
    ``stream_conns``, ``px``/``qx``, ``intervals``, ``kline_push_s``, ``ping_s``)."""

    async def raw_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=False)

    async def combined_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=True)

    async def public_raw_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=False, route="public")

    async def public_combined_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=True, route="public")

    async def market_raw_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=False, route="market")

    async def market_combined_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=True, route="market")

    def routed_stream(self, name: str, route: str | None) -> bool:
        """A valid stream that this route serves (futures: /public books, /market the rest)."""
        if not self.valid_stream(name):
            return False
        kind = name.partition("@")[2]
        public = book_kind(kind) or kind == "trade"  # futures: individual trades are public
        if route == "public":
            return public
        if route == "market":
            return not public
        return True

    async def market_ws(
        self, request: web.Request, *, combined: bool, route: str | None = None
    ) -> web.StreamResponse:
        names = request.match_info.get("streams", "")
        if combined:
            names = request.query.get("streams", "")
        streams = [s for s in names.split("/") if s and (combined or "@" in s)]
        bad = [s for s in streams if not self.routed_stream(s, route)]
        if bad:
            return berror(400, -1121, f"Invalid stream: {bad[0]}")

        def on_open(conn: Connection) -> None:
            conn.state.update(streams=list(streams), combined=combined, klines={}, route=route)

        return await serve(
            request,
            self.sockets,
            self.stream_conns,
            binary=False,
            on_text=self._on_stream_text,
            heartbeat=self.ping_s,
            on_open=on_open,
        )

    def valid_stream(self, name: str) -> bool:
        symbol, _, kind = name.partition("@")
        if symbol.upper() not in self.markets or symbol != symbol.lower():
            return False
        if kind in ("trade", "aggTrade") or self.ticker_or_book(kind):
            return True
        return kind.startswith("kline_") and kind[6:] in self.intervals

    def _on_stream_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            method, params, req_id = msg["method"], msg.get("params", []), msg.get("id")
        except (json.JSONDecodeError, KeyError, TypeError):
            conn.send({"code": 3, "msg": "Invalid JSON: expected an object with a method"})
            return
        streams = conn.state["streams"]
        if method == "SUBSCRIBE":
            bad = [p for p in params if not self.routed_stream(p, conn.state.get("route"))]
            if bad:
                conn.send(
                    {"code": 2, "msg": f"Invalid request: invalid stream {bad[0]}", "id": req_id}
                )
                return
            streams.extend(p for p in params if p not in streams)
            conn.send({"result": None, "id": req_id})
        elif method == "UNSUBSCRIBE":
            conn.state["streams"] = [s for s in streams if s not in params]
            conn.send({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": list(streams), "id": req_id})
        else:
            conn.send(
                {"code": 2, "msg": f"Invalid request: unknown variant {method}", "id": req_id}
            )

    def _emit(self, conn: Connection, stream: str, data: dict) -> None:
        conn.send({"stream": stream, "data": data} if conn.state["combined"] else data)

    def push_trades(self, symbol: str, trades: dict) -> None:
        market = self.markets[symbol]
        low = symbol.lower()
        for conn in list(self.stream_conns):
            wanted = set(conn.state["streams"])
            for kind in ("trade", "aggTrade"):
                name = f"{low}@{kind}"
                if name not in wanted:
                    continue
                for i in range(len(trades["ts"])):
                    tid = int(trades["id"][i])
                    ev = {
                        "e": kind,
                        "E": self.now(),
                        "s": symbol,
                        "p": self.px(market, trades["price"][i]),
                        "q": self.qx(market, trades["qty"][i]),
                        "T": int(trades["ts"][i]),
                        "m": bool(trades["buyer_maker"][i]),
                    }
                    if self.name != "futures":  # futures events have no "ignore" flag
                        ev["M"] = True
                    ev |= {"t": tid} if kind == "trade" else {"a": tid, "f": tid, "l": tid}
                    self._emit(conn, name, ev)

    def on_tick(self, now_ms: int) -> None:
        self.push_books(now_ms)
        wall = time.monotonic()
        if wall - self._last_push < self.kline_push_s:
            return
        self._last_push = wall
        for conn in list(self.stream_conns):
            for name in conn.state["streams"]:
                symbol, _, kind = name.partition("@")
                if kind.startswith("kline_"):
                    self._push_kline(conn, name, self.markets[symbol.upper()], kind[6:], now_ms)

    def _push_kline(self, conn, name, market, interval, now_ms) -> None:
        frame = self.intervals[interval]
        now_open = int(frame.start(np.array([now_ms]))[0])
        sent = conn.state["klines"].get(name)
        if sent is not None and sent < now_open:
            self._emit(conn, name, self._kline_event(market, frame, interval, sent, closed=True))
        conn.state["klines"][name] = now_open
        self._emit(conn, name, self._kline_event(market, frame, interval, now_open, closed=False))

    def _kline_event(self, market, frame, interval, open_ms, *, closed: bool) -> dict:
        arrays = fill_gaps(market.candles(frame, end_ms=open_ms + 1), frame, open_ms)
        if len(arrays) == 0 or int(arrays.open_time[-1]) != open_ms:
            price = market.last_price
            row = {
                "o": price,
                "h": price,
                "l": price,
                "c": price,
                "v": 0.0,
                "q": 0.0,
                "n": 0,
                "f": -1,
                "L": -1,
                "V": 0.0,
                "Q": 0.0,
            }
        else:
            i = len(arrays) - 1
            row = {
                "o": arrays.open[i],
                "h": arrays.high[i],
                "l": arrays.low[i],
                "c": arrays.close[i],
                "v": arrays.volume[i],
                "q": arrays.quote_volume[i],
                "n": int(arrays.count[i]),
                "f": int(arrays.first_id[i]),
                "L": int(arrays.last_id[i]),
                "V": arrays.taker_buy_volume[i],
                "Q": arrays.taker_buy_quote[i],
            }
        k = {
            "t": open_ms,
            "T": frame.next_open(open_ms) - 1,
            "s": market.symbol,
            "i": interval,
            "f": row["f"],
            "L": row["L"],
            "o": self.px(market, row["o"]),
            "c": self.px(market, row["c"]),
            "h": self.px(market, row["h"]),
            "l": self.px(market, row["l"]),
            "v": self.qx(market, row["v"]),
            "n": row["n"],
            "x": closed,
            "q": f"{float(row['q']):.8f}",
            "V": self.qx(market, row["V"]),
            "Q": f"{float(row['Q']):.8f}",
            "B": "0",
        }
        return {"e": "kline", "E": self.now(), "s": market.symbol, "k": k}
