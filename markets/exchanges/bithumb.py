"""Bithumb (KRW spot, the v1/v2 API that copies Upbit's design). URLs are roots: REST
``https://api.bithumb.com`` (paths ``/v1/...``, ``/v2/...``), WebSocket
``wss://ws-api.bithumb.com`` (``/websocket/v1`` public, ``/websocket/v2/private``).

Differences from Upbit handled here: candle ``to`` is a *naive KST* wall-clock time (a zone
suffix gives 400); day/week/month and 240-minute candles are on KST boundaries, so the product's
UTC-aligned ``4h`` and ``1d`` are not served natively (aggregate them from ``1h``); no candle
WebSocket; orders go to ``POST /v2/orders`` (``order_type``, ``client_order_id``) and return only
an acknowledgement, so the order is then read back with ``GET /v1/order``; JWT adds ``timestamp``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import kr_parse
from .base import Capabilities, OrderInfo, OrderRequest
from .kr_base import KR_CAPABILITIES, KR_MINUTE_TIMEFRAMES, KoreanAdapter, per_second
from .rounding import BITHUMB_KRW_TICKS, fmt
from .signing import bithumb_jwt_payload, jwt_encode

KST = timedelta(hours=9)

BITHUMB_CAPABILITIES = Capabilities(
    venue="bithumb",
    timeframes=dict(KR_MINUTE_TIMEFRAMES),
    unsupported_timeframes={
        "4h": "Bithumb's 240-minute candles open at 03/07/11/15/19/23 UTC (KST grid); "
              "aggregate 4h from 1h candles",
        "1d": "Bithumb's day candles open at 00:00 KST (15:00 UTC); aggregate 1d from 1h",
    },
    rate_groups=per_second({
        "market": 150, "candles": 150, "trades": 150, "ticker": 150, "orderbook": 150,
        "default": 140, "order": 140, "cancel": 140, "batch": 20, "ws-connect": 10,
    }),
    price_bands={"KRW": BITHUMB_KRW_TICKS},
    client_order_id_pattern=r"^[A-Za-z0-9_-]{1,36}$",
    **KR_CAPABILITIES,
)


class BithumbAdapter(KoreanAdapter):
    key = "bithumb"
    capabilities = BITHUMB_CAPABILITIES
    DEFAULT_REST_URL = "https://api.bithumb.com"
    DEFAULT_WS_URL = "wss://ws-api.bithumb.com"
    WS_PUBLIC_PATH = "/websocket/v1"
    WS_PRIVATE_PATH = "/websocket/v2/private"
    MARKETS_PARAMS = {"isDetails": "true"}
    # The KRW minimum is UNCONFIRMED in the docs (the web UI has used 5,000 KRW).
    MIN_TOTALS = {"KRW": Decimal("5000")}
    QUOTE_TICKS = {"KRW": None, "BTC": Decimal("0.00000001")}
    CLIENT_ID_PARAM = "client_order_id"

    def _token(self, params: Any = None) -> str:
        payload = bithumb_jwt_payload(self.api_key, params,
                                      timestamp_ms=int(self._clock() * 1000))
        return jwt_encode(payload, self.api_secret, "HS256")

    def _to_param(self, ms: int) -> str:
        """Exclusive end as naive KST wall-clock time, e.g. ``2026-07-30T16:48:00``."""
        return (datetime.fromtimestamp(ms / 1000, UTC) + KST).strftime("%Y-%m-%dT%H:%M:%S")

    def _order_body(self, order: OrderRequest) -> dict[str, Any]:
        side = "bid" if order.side == "buy" else "ask"
        body: dict[str, Any] = {"market": order.symbol, "side": side}
        if order.type == "limit":
            body |= {"order_type": "limit", "price": fmt(order.price),
                     "volume": fmt(order.quantity)}
        elif order.side == "buy":
            if order.quote_amount is None:
                raise ValueError("a Bithumb market buy is sized by quote_amount (KRW to spend)")
            body |= {"order_type": "price", "price": fmt(order.quote_amount)}
        else:
            body |= {"order_type": "market", "volume": fmt(order.quantity)}
        body["client_order_id"] = order.client_order_id
        return body

    def _submit(self, order: OrderRequest) -> OrderInfo:
        ack = self._private("POST", "/v2/orders", group="order", body=self._order_body(order),
                            is_order=True)
        order_id = ack.get("order_id") if isinstance(ack, dict) else None
        if not order_id:
            raise ValueError(f"bithumb: order acknowledgement without order_id: {ack!r}")
        return self.fetch_order(order.symbol, exchange_order_id=str(order_id))

    def cancel_order(self, symbol: str, client_order_id: str | None = None,
                     exchange_order_id: str | None = None) -> OrderInfo:
        """``DELETE /v2/order`` then the order as it stands (cancellation may still be
        in progress: poll ``fetch_order`` for ``cancelled``)."""
        params = [("order_id", exchange_order_id)] if exchange_order_id else \
            [("client_order_id", client_order_id)]
        ack = self._private("DELETE", "/v2/order", group="cancel", params=params,
                            is_order=True)
        return self.fetch_order(symbol, exchange_order_id=str(ack.get("order_id")
                                                              or exchange_order_id or ""),
                                client_order_id=client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[OrderInfo]:
        params: list[tuple[str, Any]] = [("market", symbol)] if symbol else []
        params += [("states[]", "wait"), ("states[]", "watch"), ("limit", 100)]
        rows = self._private("GET", "/v1/orders", params=params)
        return [kr_parse.parse_order(r) for r in rows]
