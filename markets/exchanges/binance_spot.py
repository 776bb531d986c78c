"""Binance spot. URLs are roots: REST ``https://api.binance.com`` (paths ``/api/v3/...``),
market streams ``wss://stream.binance.com:9443`` (``/stream?streams=a/b``), WebSocket API
``wss://ws-api.binance.com:443/ws-api/v3`` (option ``ws_api_url``; derived as
``<ws_url>/ws-api/v3`` when only ``ws_url`` is given, so one local simulator serves both).

The user data stream uses the WebSocket API's ``userDataStream.subscribe.signature`` (the REST
listenKey endpoints were retired on 2026-02-20).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from . import binance_parse as bp
from .base import Balance, OrderInfo, OrderRequest, UserEvent
from .binance_base import BinanceAdapter, binance_capabilities
from .signing import binance_ws_signature
from .ws import StreamSpec, run_stream

SPOT_CAPABILITIES = binance_capabilities(
    "binance_spot", market_type="spot", candles_per_request=1000, weight_per_minute=6000,
    orders_per_10s=50, streams_per_connection=1024, supports_quote_amount_market_buy=True)


class BinanceSpotAdapter(BinanceAdapter):
    key = "binance_spot"
    capabilities = SPOT_CAPABILITIES
    DEFAULT_REST_URL = "https://api.binance.com"
    DEFAULT_WS_URL = "wss://stream.binance.com:9443"
    DEFAULT_WS_API_URL = "wss://ws-api.binance.com:443/ws-api/v3"
    PREFIX = "/api/v3"
    STREAM_PATH = "/stream"
    TRADE_STREAM = "trade"
    KLINE_WEIGHT = 2
    INFO_WEIGHT = 20
    TRADES_PATH = "/api/v3/myTrades"
    QUERY_WEIGHT = 4
    TRADES_WEIGHT = 5
    OPEN_WEIGHTS = (6, 80)

    def __init__(self, *, ws_api_url: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if ws_api_url:
            self.ws_api_url = ws_api_url
        elif kw.get("ws_url"):
            self.ws_api_url = self.ws_url + "/ws-api/v3"
        else:
            self.ws_api_url = self.DEFAULT_WS_API_URL

    def balances(self) -> list[Balance]:
        payload = self._signed("GET", "/api/v3/account", [("omitZeroBalances", "true")],
                               weight=20)
        return bp.parse_spot_balances(payload)

    def _submit(self, order: OrderRequest) -> OrderInfo:
        params = [*self._order_params(order), ("newOrderRespType", "FULL")]
        raw = self._signed("POST", "/api/v3/order", params, weight=1, orders=1, is_order=True)
        return bp.parse_order(raw)

    def _subscribe_request(self) -> str:
        params: dict[str, Any] = {"apiKey": self.api_key,
                                  "timestamp": self._now_ms() + self.time_offset_ms,
                                  "recvWindow": self.recv_window_ms}
        params["signature"] = binance_ws_signature(self.api_secret, params)
        return json.dumps({"id": str(uuid.uuid4()),
                           "method": "userDataStream.subscribe.signature", "params": params})

    async def user_stream(self) -> AsyncIterator[UserEvent]:
        """Order and balance events via the WebSocket API subscription.

        Each (re)subscription yields a ``StreamNotice(kind="subscribed")`` first: re-sync open
        orders and balances from REST then. Reconnects before 24 h and on
        ``eventStreamTerminated``.
        """
        self._key_header()

        async def subscribe(conn) -> None:
            await conn.send(self._subscribe_request())

        spec = StreamSpec(venue=self.key, limiter=self.limiter, url=self.ws_api_url,
                          parse=bp.parse_ws_spot_user,
                          subscribe=subscribe, ping_interval_s=self.ws_ping_interval_s,
                          ping_timeout_s=60.0, max_lifetime_s=self.ws_max_lifetime_s)
        async for event in run_stream(spec, self.user_stream_stats):
            yield event
