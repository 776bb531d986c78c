"""Shared adapter for the Upbit/Bithumb wire design: REST candles newest-first paged by ``to``,
JWT auth, the subscribe-array WebSocket. ``upbit.py`` and ``bithumb.py`` supply the differences
as data and a few small methods.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from markets.timeframes import floor_ms, timeframe_ms

from . import kr_parse
from .base import (
    Balance,
    CandleRow,
    ExchangeAdapter,
    OrderInfo,
    OrderRequest,
    RateGroup,
    StreamNotice,
    SymbolInfo,
    Trade,
    UserEvent,
)
from .errors import AuthenticationError, map_kr_error
from .outcome import PlacesOnce
from .ratelimit import InProcessRateLimiter, RateLimiter, parse_remaining_req
from .rest import RestClient
from .rounding import band_table, prepare_order
from .signing import query_pairs
from .ws import StreamSpec, StreamStats, run_stream, run_stream_batches

log = logging.getLogger(__name__)

#: The candle paths both venues serve on the UTC grid (Bithumb's 4h and 1d are on KST's).
KR_MINUTE_TIMEFRAMES = {"1m": "minutes/1", "3m": "minutes/3", "5m": "minutes/5",
                        "15m": "minutes/15", "30m": "minutes/30", "1h": "minutes/60"}

def per_second(requests: dict[str, int]) -> dict[str, RateGroup]:
    """Budgets of ``requests`` per second by ``Remaining-Req`` group name (how both venues
    state their limits)."""
    return {group: RateGroup(count, 1.0) for group, count in requests.items()}


#: What Upbit and Bithumb share, as ``Capabilities`` fields: KRW spot, 200 candles a page with
#: no candle for an interval without trades, market buys sized by the KRW to spend, and a text
#: ``PING`` keeping the WebSocket open.
KR_CAPABILITIES = dict(
    market_types=("spot",),
    max_candles_per_request=200,
    supports_quote_amount_market_buy=True,
    market_buy_by_quantity=False,
    candles_skip_empty_intervals=True,
    ws_text_ping=True,
)


class KoreanAdapter(PlacesOnce, ExchangeAdapter):
    """Base for Upbit and Bithumb. Subclasses set the class attributes and auth/order bits."""

    DEFAULT_REST_URL = ""
    DEFAULT_WS_URL = ""
    WS_PUBLIC_PATH = ""
    WS_PRIVATE_PATH = ""
    MARKETS_PARAMS: dict[str, str] = {}
    MIN_TOTALS: dict[str, Decimal] = {}
    QUOTE_TICKS: dict[str, Decimal | None] = {}
    CLIENT_ID_PARAM = "identifier"
    PUBLIC_GROUPS = {"candles": "candles", "market": "market"}

    def __init__(self, *, rest_url: str | None = None, ws_url: str | None = None,
                 api_key: str | None = None, api_secret: str | None = None,
                 limiter: RateLimiter | None = None, timeout: tuple[float, float] = (3.05, 10.0),
                 lookup_attempts: int = 3, lookup_delay_s: float = 0.5,
                 ws_ping_interval_s: float = 30.0, ws_text_ping_s: float = 60.0,
                 clock=time.time, sleep=time.sleep) -> None:
        self.rest_url = (rest_url or self.DEFAULT_REST_URL).rstrip("/")
        self.ws_url = (ws_url or self.DEFAULT_WS_URL).rstrip("/")
        self.api_key, self.api_secret = api_key, api_secret
        self.limiter = limiter or InProcessRateLimiter(self.key,
                                                       self.capabilities.rate_groups)
        self.lookup_attempts, self.lookup_delay_s = lookup_attempts, lookup_delay_s
        self.ws_ping_interval_s = ws_ping_interval_s
        self.ws_text_ping_s = ws_text_ping_s  # the venue closes idle connections at ~120 s
        self._clock, self._sleep = clock, sleep
        self.http = RestClient(self.key, self.rest_url, limiter=self.limiter,
                               map_error=map_kr_error, observe=self._observe, timeout=timeout,
                               sleep=sleep)
        self._symbols: dict[str, SymbolInfo] | None = None
        self.stream_stats = StreamStats()
        self.user_stream_stats = StreamStats()

    # plumbing ----------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def _observe(self, group: str, headers: Any) -> None:
        parsed = parse_remaining_req(headers.get("Remaining-Req"))
        if parsed is not None:
            name, sec = parsed
            self.limiter.observe_remaining(name if name in self.limiter.groups else group, sec)

    def _token(self, params: Any = None) -> str:
        raise NotImplementedError

    def _auth_headers(self, params: Any = None) -> dict[str, str]:
        if not (self.api_key and self.api_secret):
            raise AuthenticationError(f"{self.key}: this call needs an API key and secret",
                                      venue=self.key)
        return {"Authorization": f"Bearer {self._token(params)}"}

    def _public(self, path: str, params: Any, group: str) -> Any:
        return self.http.request("GET", path, params=params, group=group).payload

    def _private(self, method: str, path: str, *, group: str = "default", params: Any = None,
                 body: dict[str, Any] | None = None, is_order: bool = False) -> Any:
        pairs = kr_parse_pairs(params)

        def sign():
            return pairs, self._auth_headers(body if body is not None else pairs), None

        return self.http.request(method, path, group=group, json_body=body, sign=sign,
                                 is_order=is_order).payload

    # market data -------------------------------------------------------------------------
    def list_symbols(self) -> list[SymbolInfo]:
        rows = self._public("/v1/market/all", self.MARKETS_PARAMS, self.PUBLIC_GROUPS["market"])
        symbols = kr_parse.parse_markets(rows, min_totals=self.MIN_TOTALS,
                                         ticks=self.QUOTE_TICKS)
        self._symbols = {s.code: s for s in symbols}
        return symbols

    def _candle_path(self, timeframe: str) -> str:
        timeframe_ms(timeframe)
        native = self.capabilities.timeframes.get(timeframe)
        if native is None:
            why = self.capabilities.unsupported_timeframes.get(timeframe, "not offered")
            raise ValueError(f"{self.key}: {timeframe} candles are not served: {why}")
        return f"/v1/candles/{native}"

    def _to_param(self, ms: int) -> str:
        raise NotImplementedError

    def fetch_candles(self, symbol: str, timeframe: str, start_ms: int, end_ms: int
                      ) -> list[CandleRow]:
        """Closed candles ``start_ms <= open < end_ms`` oldest first.

        Pages backwards with ``to`` (exclusive end) and ``count`` = 200 from the newest closed
        candle; the forming candle is never requested. Intervals without trades have no candle
        on these venues, so gaps in the result can be real.
        """
        path = self._candle_path(timeframe)
        end = min(end_ms, floor_ms(int(self._clock() * 1000), timeframe))
        limit = self.capabilities.max_candles_per_request
        found: dict[int, CandleRow] = {}
        cursor = end
        while cursor > start_ms:
            rows = self._public(path, [("market", symbol), ("to", self._to_param(cursor)),
                                       ("count", limit)], self.PUBLIC_GROUPS["candles"])
            page = kr_parse.parse_candles(rows or [])
            for candle in page:
                if start_ms <= candle.open_time_ms < end:
                    found[candle.open_time_ms] = candle
            if len(page) < limit or page[0].open_time_ms >= cursor:
                break
            cursor = page[0].open_time_ms
        return [found[k] for k in sorted(found)]

    def _ws_public_url(self) -> str:
        return self.ws_url + self.WS_PUBLIC_PATH

    async def stream_trades(self, symbols: list[str]) -> AsyncIterator[Trade]:
        """Trades for many symbols on one connection (binary or text frames); ping frames keep
        it alive; bad frames are logged, counted in ``stream_stats`` and skipped."""
        codes = [s.upper() for s in symbols]

        def subscribe() -> list[str]:
            return [json.dumps([{"ticket": str(uuid.uuid4())},
                                {"type": "trade", "codes": codes},
                                {"format": "DEFAULT"}])]

        async def send_subscribe(conn) -> None:
            for message in subscribe():
                await conn.send(message)

        spec = StreamSpec(venue=self.key, limiter=self.limiter, url=self._ws_public_url(),
                          parse=lambda msg: kr_parse.parse_ws_public(msg, self.key),
                          subscribe=send_subscribe, ping_interval_s=self.ws_ping_interval_s,
                          text_ping="PING", text_ping_s=self.ws_text_ping_s,
                          idle_timeout_s=150.0)
        async with contextlib.aclosing(run_stream_batches(spec, self.stream_stats)) as batches:
            async for batch in batches:  # one generator hand-over per batch (issue 20)
                for trade in batch:
                    yield trade

    # private -----------------------------------------------------------------------------
    def balances(self) -> list[Balance]:
        return kr_parse.parse_balances(self._private("GET", "/v1/accounts"))

    def _order_body(self, order: OrderRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _submit(self, order: OrderRequest) -> OrderInfo:
        raise NotImplementedError

    def _prepare(self, order: OrderRequest) -> OrderRequest:
        """``order`` rounded to the symbol's tick (the KRW price bands where it has no fixed
        tick) and step, checked against its minimum total."""
        info = self.symbol_info(order.symbol)
        return prepare_order(order, info, table=band_table(info, self.capabilities),
                             venue=self.key)

    def fetch_order(self, symbol: str, client_order_id: str | None = None,
                    exchange_order_id: str | None = None) -> OrderInfo:
        """The order with its fills, by exchange id (preferred) or client order id."""
        if exchange_order_id:
            params = [("uuid", exchange_order_id)]
        elif client_order_id:
            params = [(self.CLIENT_ID_PARAM, client_order_id)]
        else:
            raise ValueError("give client_order_id or exchange_order_id")
        return kr_parse.parse_order(self._private("GET", "/v1/order", params=params,
                                                  is_order=True))

    def _connected_notice(self) -> list[StreamNotice]:
        return [StreamNotice(self.key, "connected", _now_ms())]

    async def user_stream(self) -> AsyncIterator[UserEvent]:
        """``myOrder`` and ``myAsset`` on the private WebSocket (JWT header per connect).

        Each (re)connection first yields ``StreamNotice(kind="connected")``: events may have
        been missed, so re-sync open orders and balances from REST then."""
        def headers() -> dict[str, str]:
            return self._auth_headers(None)

        async def send_subscribe(conn) -> None:
            await conn.send(json.dumps([{"ticket": str(uuid.uuid4())}, {"type": "myOrder"},
                                        {"type": "myAsset"}, {"format": "DEFAULT"}]))

        spec = StreamSpec(venue=self.key, limiter=self.limiter,
                          url=self.ws_url + self.WS_PRIVATE_PATH,
                          parse=lambda msg: kr_parse.parse_ws_private(msg, self.key),
                          subscribe=send_subscribe, headers=headers,
                          ping_interval_s=self.ws_ping_interval_s, text_ping="PING",
                          text_ping_s=self.ws_text_ping_s, on_connect=self._connected_notice)
        async for event in run_stream(spec, self.user_stream_stats):
            yield event


def _now_ms() -> int:
    return int(time.time() * 1000)


def kr_parse_pairs(params: Any) -> list[tuple[str, str]] | None:
    return query_pairs(params) or None
