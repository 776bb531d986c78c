"""Shared adapter for Binance spot and USDⓈ-M futures: HMAC-signed query strings with
``timestamp``/``recvWindow`` and a server-time offset, klines oldest first paged by
``startTime``/``endTime``, combined market streams with a planned reconnect before 24 h.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from markets.timeframes import floor_ms, timeframe_ms

from . import binance_parse as bp
from .base import (
    CandleRow,
    Capabilities,
    ExchangeAdapter,
    FillInfo,
    Kline,
    OrderInfo,
    OrderRequest,
    RateGroup,
    SymbolInfo,
    Trade,
)
from .errors import AuthenticationError, TemporaryExchangeError, map_binance_error
from .outcome import PlacesOnce
from .ratelimit import InProcessRateLimiter, RateLimiter
from .rest import RestClient
from .rounding import fmt, prepare_order
from .signing import binance_signature
from .ws import StreamSpec, StreamStats, run_stream, run_stream_batches

log = logging.getLogger(__name__)

#: Binance serves every product timeframe natively, named as the product names it.
TIMEFRAMES = {tf: tf for tf in ("1m", "3m", "5m", "15m", "30m", "1h", "4h", "1d")}

def binance_capabilities(venue: str, *, market_type: str, candles_per_request: int,
                         weight_per_minute: int, orders_per_10s: int,
                         streams_per_connection: int, **other: Any) -> Capabilities:
    """A Binance venue's capabilities: what spot and futures share (server time, kline
    streams, the 24 h connection limit, the client order id alphabet, 300 connects per 5
    minutes) with the figures that differ, and ``other`` fields."""
    return Capabilities(
        venue=venue, market_types=(market_type,), max_candles_per_request=candles_per_request,
        timeframes=TIMEFRAMES,
        rate_groups={"weight": RateGroup(weight_per_minute, 60.0),
                     "orders": RateGroup(orders_per_10s, 10.0),
                     "ws-connect": RateGroup(300, 300.0)},
        has_server_time=True, ws_kline_stream=True, ws_max_lifetime_s=24 * 3600.0,
        ws_streams_per_connection=streams_per_connection, ws_url_max_chars=8000,
        client_order_id_pattern=r"^[.A-Z:/a-z0-9_-]{1,36}$", **other)


RECENT_TRADE_IDS = 20_000  # trade ids remembered to drop repeats from a reconnect overlap


class BinanceAdapter(PlacesOnce, ExchangeAdapter):
    """Base for ``binance_spot`` and ``binance_futures``; subclasses set paths and weights."""

    DEFAULT_REST_URL = ""
    DEFAULT_WS_URL = ""
    PREFIX = ""  # "/api/v3" or "/fapi/v1"
    STREAM_PATH = ""  # combined streams path on ws_url
    TRADE_STREAM = "trade"
    KLINE_WEIGHT = 2
    INFO_WEIGHT = 20
    ORDER_WEIGHT = 1
    FUTURES = False

    def __init__(self, *, rest_url: str | None = None, ws_url: str | None = None,
                 api_key: str | None = None, api_secret: str | None = None,
                 limiter: RateLimiter | None = None, timeout: tuple[float, float] = (3.05, 10.0),
                 recv_window_ms: int = 5000, lookup_attempts: int = 3,
                 lookup_delay_s: float = 0.5, ws_max_lifetime_s: float = 23.5 * 3600,
                 ws_overlap_s: float = 2.0, ws_ping_interval_s: float | None = 60.0,
                 clock=time.time,
                 sleep=time.sleep) -> None:
        self.rest_url = (rest_url or self.DEFAULT_REST_URL).rstrip("/")
        self.ws_url = (ws_url or self.DEFAULT_WS_URL).rstrip("/")
        self.api_key, self.api_secret = api_key, api_secret
        self.limiter = limiter or InProcessRateLimiter(self.key, self.capabilities.rate_groups)
        self.recv_window_ms = recv_window_ms
        self.lookup_attempts, self.lookup_delay_s = lookup_attempts, lookup_delay_s
        self.ws_max_lifetime_s, self.ws_ping_interval_s = ws_max_lifetime_s, ws_ping_interval_s
        self.ws_overlap_s = ws_overlap_s
        self._clock, self._sleep = clock, sleep
        self.time_offset_ms = 0
        self.http = RestClient(self.key, self.rest_url, limiter=self.limiter,
                               map_error=map_binance_error, observe=self._observe,
                               timeout=timeout, sleep=sleep)
        self._symbols: dict[str, SymbolInfo] | None = None
        self.stream_stats = StreamStats()
        self.user_stream_stats = StreamStats()
        self.mark_stream_stats = StreamStats()

    # plumbing ----------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def _observe(self, group: str, headers: Any) -> None:
        used = headers.get("X-MBX-USED-WEIGHT-1M") or headers.get("X-MBX-USED-WEIGHT-1m")
        if used and used.isdigit():
            self.limiter.observe_used_weight("weight", int(used))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _public(self, path: str, params: Any = None, weight: int = 1) -> Any:
        return self.http.request("GET", path, params=params, group="weight",
                                 weight=weight).payload

    def _key_header(self) -> dict[str, str]:
        if not (self.api_key and self.api_secret):
            raise AuthenticationError(f"{self.key}: this call needs an API key and secret",
                                      venue=self.key)
        return {"X-MBX-APIKEY": self.api_key}

    def _signed(self, method: str, path: str, params: list[tuple[str, Any]] | None = None, *,
                weight: int = 1, is_order: bool = False, orders: int = 0) -> Any:
        """A SIGNED request; on ``-1021`` (clock outside recvWindow) resync time, retry once."""
        headers = self._key_header()

        def sign():
            pairs = [(k, v) for k, v in (params or []) if v is not None]
            pairs += [("recvWindow", self.recv_window_ms),
                      ("timestamp", self._now_ms() + self.time_offset_ms)]
            query = urllib.parse.urlencode(pairs)
            query += "&signature=" + binance_signature(self.api_secret, query)
            return query, {}, None

        also = (("orders", orders),) if orders else ()
        for attempt in range(2):
            try:
                return self.http.request(method, path, group="weight", weight=weight,
                                         headers=headers, sign=sign, is_order=is_order,
                                         also=also).payload
            except TemporaryExchangeError as exc:
                if exc.code != -1021 or attempt:
                    raise
                self.sync_time()
        raise AssertionError("unreachable")

    def server_time_ms(self) -> int:
        return int(self._public(f"{self.PREFIX}/time")["serverTime"])

    def sync_time(self) -> int:
        """Measure the server-clock offset (ms) used in signed timestamps; returns it."""
        before = self._now_ms()
        server = self.server_time_ms()
        after = self._now_ms()
        self.time_offset_ms = server - (before + after) // 2
        return self.time_offset_ms

    # market data -------------------------------------------------------------------------
    def list_symbols(self) -> list[SymbolInfo]:
        payload = self._public(f"{self.PREFIX}/exchangeInfo", weight=self.INFO_WEIGHT)
        symbols = bp.parse_exchange_info(payload, futures=self.FUTURES,
                                         max_leverage=125 if self.FUTURES else 1)
        self._symbols = {s.code: s for s in symbols}
        return symbols

    def _kline_weight(self, limit: int) -> int:
        return self.KLINE_WEIGHT

    def fetch_candles(self, symbol: str, timeframe: str, start_ms: int, end_ms: int
                      ) -> list[CandleRow]:
        """Closed candles ``start_ms <= open < end_ms`` oldest first, paged forward by
        ``startTime``; ``endTime`` stops before the forming candle, so it is never returned."""
        step = timeframe_ms(timeframe)
        interval = self.capabilities.timeframes[timeframe]
        limit = self.capabilities.max_candles_per_request
        end = min(end_ms, floor_ms(self._now_ms(), timeframe))
        found: dict[int, CandleRow] = {}
        cursor = start_ms
        while cursor < end:
            rows = self._public(f"{self.PREFIX}/klines", [
                ("symbol", symbol), ("interval", interval), ("startTime", cursor),
                ("endTime", end - 1), ("limit", limit)], weight=self._kline_weight(limit))
            page = bp.parse_klines(rows or [])
            for candle in page:
                if start_ms <= candle.open_time_ms < end:
                    found[candle.open_time_ms] = candle
            if len(page) < limit or page[-1].open_time_ms < cursor:
                break
            cursor = page[-1].open_time_ms + step
        return [found[k] for k in sorted(found)]

    def _streams_url(self, streams: list[str]) -> str:
        limit = self.capabilities.ws_streams_per_connection
        if limit is not None and len(streams) > limit:
            raise ValueError(f"{self.key}: {len(streams)} streams exceed the "
                             f"{limit} allowed on one connection")
        return f"{self.ws_url}{self.STREAM_PATH}?streams={'/'.join(streams)}"

    def _market_spec(self, streams: list[str]) -> StreamSpec:
        return StreamSpec(venue=self.key, limiter=self.limiter, url=self._streams_url(streams),
                          parse=bp.parse_ws_market, ping_interval_s=self.ws_ping_interval_s,
                          ping_timeout_s=60.0, max_lifetime_s=self.ws_max_lifetime_s,
                          overlap_s=self.ws_overlap_s)

    async def stream_trades(self, symbols: list[str]) -> AsyncIterator[Trade]:
        """Trades of many symbols on one combined stream; bad frames are logged, counted and
        skipped. Before the 24 h limit the next connection is opened while the old one is
        still read for ``ws_overlap_s``; trades seen twice in that overlap are dropped by id.
        ``serverShutdown`` reconnects at once."""
        spec = self._market_spec([f"{s.lower()}@{self.TRADE_STREAM}" for s in symbols])
        recent: set[tuple[str, str]] = set()
        order: collections.deque[tuple[str, str]] = collections.deque()
        remember, forget = order.append, order.popleft
        # Batches (the messages already received): one generator hand-over per batch, not
        # per trade (issue 20).
        async with contextlib.aclosing(run_stream_batches(spec, self.stream_stats)) as batches:
            async for batch in batches:
                for item in batch:
                    if not isinstance(item, Trade):
                        continue
                    key = (item.symbol, item.trade_id)
                    if key in recent:
                        continue
                    recent.add(key)
                    remember(key)
                    if len(order) > RECENT_TRADE_IDS:
                        recent.discard(forget())
                    yield item

    async def stream_klines(self, symbols: list[str], timeframe: str) -> AsyncIterator[Kline]:
        """Kline updates (``closed`` True on the final one per open time) for many symbols."""
        interval = self.capabilities.timeframes[timeframe]
        spec = self._market_spec([f"{s.lower()}@kline_{interval}" for s in symbols])
        async for item in run_stream(spec, self.stream_stats):
            if isinstance(item, Kline):
                yield item

    # private -----------------------------------------------------------------------------
    def _order_params(self, order: OrderRequest) -> list[tuple[str, Any]]:
        params: list[tuple[str, Any]] = [
            ("symbol", order.symbol), ("side", order.side.upper()), ("type", order.type.upper())]
        if order.type == "limit":
            params += [("timeInForce", "GTC"), ("quantity", fmt(order.quantity)),
                       ("price", fmt(order.price))]
        elif order.quantity is not None:
            params.append(("quantity", fmt(order.quantity)))
        else:
            params.append(("quoteOrderQty", fmt(order.quote_amount)))
        params.append(("newClientOrderId", order.client_order_id))
        return params

    def _submit(self, order: OrderRequest) -> OrderInfo:
        raise NotImplementedError

    def _prepare(self, order: OrderRequest) -> OrderRequest:
        """``order`` on the symbol's tick grid and step, checked against its minimum notional
        (reduce-only futures orders are exempt). ``place_order`` never re-sends it after an
        unknown outcome: Binance client ids are unique only among *open* orders, so a resend
        could double a filled order; it is looked up by ``origClientOrderId`` instead."""
        return prepare_order(order, self.symbol_info(order.symbol), venue=self.key,
                             min_notional_exempt_reduce_only=self.FUTURES)

    def _id_params(self, symbol: str, client_order_id: str | None,
                   exchange_order_id: str | None) -> list[tuple[str, Any]]:
        if exchange_order_id:
            return [("symbol", symbol), ("orderId", exchange_order_id)]
        if client_order_id:
            return [("symbol", symbol), ("origClientOrderId", client_order_id)]
        raise ValueError("give client_order_id or exchange_order_id")

    TRADES_PATH = ""
    QUERY_WEIGHT = 4
    TRADES_WEIGHT = 5

    def _fills(self, symbol: str, order_id: str) -> list[FillInfo]:
        rows = self._signed("GET", self.TRADES_PATH, [("symbol", symbol), ("orderId", order_id)],
                            weight=self.TRADES_WEIGHT)
        return bp.parse_my_trades(rows)

    def fetch_order(self, symbol: str, client_order_id: str | None = None,
                    exchange_order_id: str | None = None) -> OrderInfo:
        """The order and, when anything executed, its fills (one more request)."""
        raw = self._signed("GET", f"{self.PREFIX}/order",
                           self._id_params(symbol, client_order_id, exchange_order_id),
                           weight=self.QUERY_WEIGHT, is_order=True)
        order = bp.parse_order(raw, fills=[])
        if order.filled_quantity > 0:
            order = bp.parse_order(raw, fills=self._fills(symbol, order.exchange_order_id))
        return order

    def cancel_order(self, symbol: str, client_order_id: str | None = None,
                     exchange_order_id: str | None = None) -> OrderInfo:
        raw = self._signed("DELETE", f"{self.PREFIX}/order",
                           self._id_params(symbol, client_order_id, exchange_order_id),
                           is_order=True)
        return bp.parse_order(raw)

    OPEN_WEIGHTS = (6, 80)

    def open_orders(self, symbol: str | None = None) -> list[OrderInfo]:
        rows = self._signed("GET", f"{self.PREFIX}/openOrders",
                            [("symbol", symbol)] if symbol else [],
                            weight=self.OPEN_WEIGHTS[0 if symbol else 1])
        return [bp.parse_order(r) for r in rows]
