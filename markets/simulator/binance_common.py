"""What Binance spot and USDⓈ-M futures share: request weight, HMAC-signed endpoints, the
``{"code","msg"}`` errors, klines (oldest first; empty intervals filled with the previous close
and zero volume, the newest one still open) and the market streams (raw ``/ws/<streams>``,
combined ``/stream?streams=`` with ``{"stream","data"}``, live SUBSCRIBE, ``k.x`` closed flag).
"""

from __future__ import annotations

import json
import math
import time
from urllib.parse import parse_qsl

import numpy as np
from aiohttp import web

from markets.simulator.auth import AuthError, HmacVerifier
from markets.simulator.faults import Budget, delay_order_response, retry_after_value
from markets.simulator.market import CandleArrays, Frame, tick_of
from markets.simulator.streams import Connection, serve
from markets.simulator.venue import Venue

INTERVALS = {
    "1s": Frame("s"),
    "1m": Frame("m"),
    "3m": Frame("m", 3),
    "5m": Frame("m", 5),
    "15m": Frame("m", 15),
    "30m": Frame("m", 30),
    "1h": Frame("h"),
    "2h": Frame("h", 2),
    "4h": Frame("h", 4),
    "6h": Frame("h", 6),
    "8h": Frame("h", 8),
    "12h": Frame("h", 12),
    "1d": Frame("d"),
    "3d": Frame("d", 3),
    "1w": Frame("w"),
    "1M": Frame("M"),
}


def berror(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def missing(name: str) -> web.Response:
    return berror(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def fill_gaps(c: CandleArrays, frame: Frame, until_open: int | None) -> CandleArrays:
    """Binance produces a kline for every interval: gaps get OHLC = previous close, volume 0."""
    width = frame.width_ms
    if width is None or len(c) == 0:
        return c
    last = int(c.open_time[-1]) if until_open is None else max(int(c.open_time[-1]), until_open)
    grid = np.arange(int(c.open_time[0]), last + 1, width, dtype=np.int64)
    if len(grid) == len(c):
        return c
    pos = np.searchsorted(c.open_time, grid, side="right") - 1  # last real candle at or before
    real = c.open_time[pos] == grid
    prev_close = c.close[pos]
    out = {}
    for name, default in (
        ("open", None),
        ("high", None),
        ("low", None),
        ("close", None),
        ("volume", 0.0),
        ("quote_volume", 0.0),
        ("count", 0),
        ("first_id", -1),
        ("last_id", -1),
        ("last_ts", 0),
        ("taker_buy_volume", 0.0),
        ("taker_buy_quote", 0.0),
    ):
        values = getattr(c, name)[pos]
        out[name] = np.where(real, values, prev_close if default is None else default)
    return CandleArrays(open_time=grid, **out)


class BinanceBase(Venue):
    """Shared REST and stream plumbing; subclasses set the constants and routes."""

    weight_limit = 6000
    kline_limit = 1000
    kline_push_s = 2.0
    ping_s = 20.0
    price_places: int | None = 8
    qty_places: int | None = 8
    intervals = INTERVALS
    order_windows = (("10S", 10), ("1D", 86_400))

    def __init__(self, ctx, markets, accounts, *, spread_bps: float = 4.0) -> None:
        super().__init__(ctx, markets, accounts)
        self.hmac = HmacVerifier({a.key: a.secret for a in accounts}, clock_ms=ctx.clock_ms)
        self.budget = Budget({"weight": (self.weight_limit, 60.0)})
        self.stream_conns: set[Connection] = set()
        self._last_push = 0.0
        self._order_stamps: dict[str, list[float]] = {}

    def server_error(self) -> web.Response:
        return berror(
            500,
            -1001,
            "Internal error; unable to process your request. Please try your request again.",
        )

    # ---- REST plumbing ------------------------------------------------------------------------

    def endpoint(
        self,
        weight,
        handler,
        *,
        signed: bool = False,
        key_only: bool = False,
        is_order: bool = False,
    ):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            faults = self.ctx.faults
            query = request.rel_url.raw_query_string
            body = await request.text() if request.can_read_body else ""
            who = request.remote or ""
            if callable(weight):  # a weight that depends on the query (e.g. with/without symbol)
                cost = weight(dict(parse_qsl(query)))
            else:
                cost = weight
            if faults.rate_limits:
                banned = self.bans.check(who, faults)
                if banned:
                    resp = berror(
                        418,
                        -1003,
                        "Way too much request weight used; IP banned until "
                        f"{int(time.time() + banned) * 1000}. Please use WebSocket Streams "
                        "for live updates to avoid bans.",
                    )
                    if faults.retry_after:
                        resp.headers["Retry-After"] = retry_after_value(banned)
                    return resp
                ok, used, limit, reset = self.budget.spend(
                    "weight", cost, faults.rate_limit_budget, who
                )
                if not ok:
                    resp = berror(
                        429,
                        -1003,
                        f"Too much request weight used; current limit is "
                        f"{limit} request weight per 1 MINUTE. Please use WebSocket "
                        "Streams for live updates to avoid polling the API.",
                    )
                    if faults.retry_after:
                        resp.headers["Retry-After"] = retry_after_value(reset)
                    resp.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
                    self.bans.refused(who, reset)
                    return resp
            else:
                used = cost
            try:
                if signed:
                    key, params = self.hmac.verify(request.headers.get("X-MBX-APIKEY"), query, body)
                else:
                    params = dict(parse_qsl(query)) | dict(parse_qsl(body))
                    key = (
                        self.hmac.api_key(request.headers.get("X-MBX-APIKEY")) if key_only else None
                    )
                resp = handler(params, self.accounts[key] if key else None)
            except AuthError as exc:
                resp = berror(exc.status, exc.name, exc.message)
            resp.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            if is_order and resp.status == 200:
                for header, count in self.order_counts(key):
                    resp.headers[header] = str(count)
                await delay_order_response(faults)
            return resp

        return wrapped

    def order_counts(self, key: str) -> list[tuple[str, int]]:
        """``X-MBX-ORDER-COUNT-*`` values after one more order by ``key`` (wall-clock windows)."""
        now = time.monotonic()
        stamps = [t for t in self._order_stamps.get(key, []) if now - t < 86_400] + [now]
        self._order_stamps[key] = stamps
        return [
            (f"X-MBX-ORDER-COUNT-{name}", sum(1 for t in stamps if now - t < width))
            for name, width in self.order_windows
        ]

    def symbol_market(self, params: dict):
        """(market, None) or (None, error response)."""
        symbol = params.get("symbol")
        if not symbol:
            return None, missing("symbol")
        market = self.markets.get(symbol)
        if market is None:
            return None, berror(400, -1121, "Invalid symbol.")
        return market, None

    def px(self, market, value) -> str:
        """A price string: fixed ``price_places`` (spot: 8), or the tick's decimals (futures)."""
        places = self.price_places
        if places is None:
            places = decimals(tick_of(market.spec, market.last_price))
        return f"{float(value):.{places}f}"

    def qx(self, market, value) -> str:
        places = self.qty_places if self.qty_places is not None else decimals(market.spec.step)
        return f"{float(value):.{places}f}"

    # ---- market data --------------------------------------------------------------------------

    def server_time(self, params, account) -> web.Response:
        return web.json_response({"serverTime": self.now()})

    def ping(self, params, account) -> web.Response:
        return web.json_response({})

    def kline_arrays(self, market, frame: Frame, params: dict, limit: int) -> CandleArrays:
        start = int(params["startTime"]) if params.get("startTime") else None
        end = int(params["endTime"]) if params.get("endTime") else None
        now_open = int(frame.start(np.array([self.now()]))[0])
        lo = hi = None
        width = frame.width_ms  # bound the work to the window (plus a margin for gap filling)
        if width is not None and start is not None:
            lo, hi = start - 60 * width, start + (limit + 1) * width
        elif width is not None:
            lo = (
                min(end, now_open) - (limit + 60) * width
                if end is not None
                else (now_open - (limit + 60) * width)
            )
        if end is not None:
            hi = end + 1 if hi is None else min(hi, end + 1)
        arrays = market.candles(frame, end_ms=hi, start_ms=lo)
        arrays = fill_gaps(arrays, frame, now_open if end is None or end >= now_open else None)
        keep = np.ones(len(arrays), dtype=bool)
        if start is not None:
            keep &= arrays.open_time >= start
        if end is not None:
            keep &= arrays.open_time <= end
        idx = np.flatnonzero(keep)
        idx = idx[:limit] if start is not None else idx[-limit:]
        return CandleArrays(**{k: v[idx] for k, v in arrays.__dict__.items()})

    def klines(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        frame = self.intervals.get(params.get("interval", ""))
        if frame is None:
            return (
                missing("interval")
                if not params.get("interval")
                else berror(400, -1120, "Invalid interval.")
            )
        try:
            limit = min(max(int(params.get("limit", "500")), 1), self.kline_limit)
            arrays = self.kline_arrays(market, frame, params, limit)
        except ValueError:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        rows = []
        faults = self.ctx.faults
        for i in range(len(arrays)):
            t = int(arrays.open_time[i])
            close = arrays.close[i]
            if faults.malformed_candle(t):  # a fault: the close above the high
                close = arrays.high[i] * 1.01 + 1.0
            rows.append(
                [
                    t,
                    self.px(market, arrays.open[i]),
                    self.px(market, arrays.high[i]),
                    self.px(market, arrays.low[i]),
                    self.px(market, close),
                    self.qx(market, arrays.volume[i]),
                    frame.next_open(t) - 1,
                    f"{float(arrays.quote_volume[i]):.8f}",
                    int(arrays.count[i]),
                    self.qx(market, arrays.taker_buy_volume[i]),
                    f"{float(arrays.taker_buy_quote[i]):.8f}",
                    "0",
                ]
            )
        return web.json_response(rows)

    # ---- market streams -----------------------------------------------------------------------

    async def raw_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=False)

    async def combined_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.market_ws(request, combined=True)

    async def market_ws(self, request: web.Request, *, combined: bool) -> web.StreamResponse:
        names = request.match_info.get("streams", "")
        if combined:
            names = request.query.get("streams", "")
        streams = [s for s in names.split("/") if s]
        bad = [s for s in streams if not self.valid_stream(s)]
        if bad:
            return berror(400, -1121, f"Invalid stream: {bad[0]}")

        def on_open(conn: Connection) -> None:
            conn.state.update(streams=list(streams), combined=combined, klines={})

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
        if kind in ("trade", "aggTrade"):
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
            bad = [p for p in params if not self.valid_stream(p)]
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
                        "M": True,
                    }
                    ev |= {"t": tid} if kind == "trade" else {"a": tid, "f": tid, "l": tid}
                    self._emit(conn, name, ev)

    def on_tick(self, now_ms: int) -> None:
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
