"""Binance USDⓈ-M futures (perpetuals). URLs are roots: REST ``https://fapi.binance.com``
(paths ``/fapi/v1|v2|v3/...``), WebSocket ``wss://fstream.binance.com`` with the 2026 routed
paths: ``/market/stream?streams=`` (trades, klines) and ``/private/ws?listenKey=...&events=``.

Orders: ``reduceOnly`` as the string ``"true"``, one-way position mode (``positionSide``
BOTH); conditional orders (stops) are not sent here (they moved to ``/fapi/v1/algoOrder``).
The user stream still uses a REST listenKey (60 min, kept alive every ``keepalive_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from . import binance_parse as bp
from .base import (
    Balance,
    Capabilities,
    OrderInfo,
    OrderRequest,
    PositionInfo,
    RateGroup,
    StreamNotice,
    UserEvent,
)
from .binance_base import BinanceAdapter
from .errors import ExchangeError
from .ws import StreamSpec, run_stream

log = logging.getLogger(__name__)

TIMEFRAMES = {tf: tf for tf in ("1m", "3m", "5m", "15m", "30m", "1h", "4h", "1d")}

FUTURES_CAPABILITIES = Capabilities(
    venue="binance_futures",
    market_types=("perpetual",),
    max_candles_per_request=1500,
    timeframes=TIMEFRAMES,
    rate_groups={"weight": RateGroup(2400, 60.0), "orders": RateGroup(300, 10.0),
                 "ws-connect": RateGroup(300, 300.0)},
    supports_reduce_only=True,
    supports_leverage=True,
    has_server_time=True,
    ws_kline_stream=True,
    ws_max_lifetime_s=24 * 3600.0,
    client_order_id_pattern=r"^[.A-Z:/a-z0-9_-]{1,36}$",
)

USER_EVENTS = "ORDER_TRADE_UPDATE/ACCOUNT_UPDATE/listenKeyExpired"


class BinanceFuturesAdapter(BinanceAdapter):
    key = "binance_futures"
    capabilities = FUTURES_CAPABILITIES
    DEFAULT_REST_URL = "https://fapi.binance.com"
    DEFAULT_WS_URL = "wss://fstream.binance.com"
    PREFIX = "/fapi/v1"
    STREAM_PATH = "/market/stream"
    TRADE_STREAM = "aggTrade"
    MAX_STREAMS = 200
    INFO_WEIGHT = 1
    FUTURES = True
    TRADES_PATH = "/fapi/v1/userTrades"
    QUERY_WEIGHT = 1
    TRADES_WEIGHT = 5
    OPEN_WEIGHTS = (1, 40)

    def __init__(self, *, keepalive_s: float = 30 * 60.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.keepalive_s = keepalive_s

    def _kline_weight(self, limit: int) -> int:
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10

    def balances(self) -> list[Balance]:
        """Free = ``availableBalance``; locked = wallet ``balance`` minus that."""
        return bp.parse_futures_balances(self._signed("GET", "/fapi/v3/balance", weight=5))

    def _submit(self, order: OrderRequest) -> OrderInfo:
        if order.quantity is None:
            raise ValueError("binance_futures orders need a quantity (no quoteOrderQty)")
        params = self._order_params(order)
        if order.reduce_only:
            params.append(("reduceOnly", "true"))
        params.append(("newOrderRespType", "RESULT"))
        raw = self._signed("POST", "/fapi/v1/order", params, weight=0, orders=1, is_order=True)
        order = bp.parse_order(raw, fills=[])
        if order.filled_quantity > 0:  # RESULT carries no fills: read them (fees included)
            order = bp.parse_order(raw, fills=self._fills(order.symbol,
                                                          order.exchange_order_id))
        return order

    def positions(self) -> list[PositionInfo]:
        """Open positions (non-zero ``positionAmt``) from ``/fapi/v2/positionRisk``."""
        rows = self._signed("GET", "/fapi/v2/positionRisk", weight=5)
        return [p for p in bp.parse_position_risk(rows) if p.quantity != 0]

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set the symbol's leverage (1-125); returns what the venue applied."""
        if not 1 <= int(leverage) <= 125:
            raise ValueError(f"leverage must be 1..125, got {leverage}")
        raw = self._signed("POST", "/fapi/v1/leverage",
                           [("symbol", symbol), ("leverage", int(leverage))])
        return int(raw["leverage"])

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """``isolated`` or ``cross``; "no need to change" (-4046) counts as success."""
        wire = {"isolated": "ISOLATED", "cross": "CROSSED", "crossed": "CROSSED"}.get(
            margin_type.lower())
        if wire is None:
            raise ValueError(f"margin type must be 'isolated' or 'cross', got {margin_type!r}")
        try:
            self._signed("POST", "/fapi/v1/marginType",
                         [("symbol", symbol), ("marginType", wire)])
        except ExchangeError as exc:
            if exc.code != -4046:
                raise

    # listenKey ---------------------------------------------------------------------------
    def start_listen_key(self) -> str:
        raw = self.http.request("POST", "/fapi/v1/listenKey", group="weight",
                                headers=self._key_header()).payload
        return raw["listenKey"]

    def keepalive_listen_key(self) -> None:
        self.http.request("PUT", "/fapi/v1/listenKey", group="weight",
                          headers=self._key_header())

    async def user_stream(self) -> AsyncIterator[UserEvent]:
        """ORDER_TRADE_UPDATE / ACCOUNT_UPDATE on ``/private/ws``; a new listenKey per
        connection, kept alive every ``keepalive_s``; ``listenKeyExpired`` yields a notice
        and reconnects with a fresh key. Each (re)connection first yields
        ``StreamNotice(kind="connected")``: re-sync orders and positions from REST then."""
        self._key_header()

        async def url() -> str:
            key = await asyncio.to_thread(self.start_listen_key)
            return f"{self.ws_url}/private/ws?listenKey={key}&events={USER_EVENTS}"

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(self.keepalive_s)
                try:
                    await asyncio.to_thread(self.keepalive_listen_key)
                except ExchangeError as exc:
                    log.warning("%s: listenKey keepalive failed: %s", self.key, exc)

        spec = StreamSpec(venue=self.key, limiter=self.limiter, url=url,
                          parse=bp.parse_ws_futures_user,
                          ping_interval_s=self.ws_ping_interval_s, ping_timeout_s=60.0,
                          max_lifetime_s=self.ws_max_lifetime_s,
                          on_connect=lambda: [StreamNotice(self.key, "connected",
                                                           int(time.time() * 1000))])
        task = asyncio.create_task(keepalive())
        try:
            async for event in run_stream(spec, self.user_stream_stats):
                yield event
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
