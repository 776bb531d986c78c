"""What Binance spot and USDⓈ-M futures share: request weight, HMAC-signed endpoints and
klines (oldest first; empty intervals filled with the previous close and zero volume, the newest
one still open). The market streams are :mod:`simulator.binance.market_ws`; the ``{"code","msg"}``
errors, intervals and gap filling :mod:`simulator.binance.protocol`.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import numpy as np
from aiohttp import web

from simulator.auth import AuthError, HmacVerifier
from simulator.binance.market_ws import MarketStreams
from simulator.binance.protocol import INTERVALS, berror, decimals, fill_gaps, missing
from simulator.faults import Budget, delay_order_response, retry_after_value
from simulator.market import CandleArrays, Frame, tick_of
from simulator.streams import Connection
from simulator.venue import Venue

__all__ = ["INTERVALS", "BinanceBase", "berror", "decimals", "fill_gaps", "missing"]

class BinanceBase(MarketStreams, Venue):
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

    def unknown_route(self, status: int, method: str, path: str) -> web.Response:
        # The venue's own 404 page is HTML; the simulator keeps its {"code","msg"} shape so a
        # client's error decoding works, with -1000 (UNKNOWN) and the path named.
        return berror(status, -1000, f"{method} {path} is not an endpoint of this venue.")

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
        if start is not None and market.visible:
            # A start before the first candle (``startTime=0``, how clients find a symbol's first
            # candle) answers the first candles at or after it, as the venue does.
            first_open = int(frame.start(market.log.ts[:1])[0])
            start = max(start, first_open)
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
