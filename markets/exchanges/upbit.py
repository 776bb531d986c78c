"""Upbit (KRW spot). URLs are roots: REST ``https://api.upbit.com`` (paths ``/v1/...``),
WebSocket ``wss://api.upbit.com`` (``/websocket/v1`` public, ``/websocket/v1/private``).

Candles are UTC-aligned, newest first, ``to`` = exclusive ISO-8601 UTC end. Orders: JSON body,
``identifier`` = client order id (unique forever per account). Auth: JWT HS256 (HS512 also
accepted by the venue). Rate groups are the ``Remaining-Req`` group names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from . import kr_parse
from .base import Capabilities, OrderInfo, OrderRequest, RateGroup
from .kr_base import KR_CAPABILITIES, KR_MINUTE_TIMEFRAMES, KoreanAdapter, per_second
from .rounding import UPBIT_KRW_TICKS, fmt
from .signing import jwt_encode, upbit_jwt_payload

UPBIT_CAPABILITIES = Capabilities(
    venue="upbit",
    timeframes=KR_MINUTE_TIMEFRAMES | {"4h": "minutes/240", "1d": "days"},
    rate_groups=per_second({
        "market": 10, "candles": 10, "crix-trades": 10, "ticker": 10, "orderbook": 10,
        "default": 30, "order": 8, "order-test": 8, "ws-connect": 5,
    }) | {"order-cancel-all": RateGroup(1, 2.0)},
    price_bands={"KRW": UPBIT_KRW_TICKS},
    client_order_id_unique_forever=True,
    client_order_id_pattern=r"^[A-Za-z0-9._~-]{1,64}$",
    **KR_CAPABILITIES,
)


class UpbitAdapter(KoreanAdapter):
    key = "upbit"
    capabilities = UPBIT_CAPABILITIES
    DEFAULT_REST_URL = "https://api.upbit.com"
    DEFAULT_WS_URL = "wss://api.upbit.com"
    WS_PUBLIC_PATH = "/websocket/v1"
    WS_PRIVATE_PATH = "/websocket/v1/private"
    MARKETS_PARAMS = {"is_details": "true"}
    MIN_TOTALS = {"KRW": Decimal("5000"), "BTC": Decimal("0.00005")}
    QUOTE_TICKS = {"KRW": None, "BTC": Decimal("0.00000001")}
    CLIENT_ID_PARAM = "identifier"

    def __init__(self, *, jwt_alg: str = "HS256", **kw: Any) -> None:
        super().__init__(**kw)
        self.jwt_alg = jwt_alg

    def _token(self, params: Any = None) -> str:
        return jwt_encode(upbit_jwt_payload(self.api_key, params), self.api_secret,
                          self.jwt_alg)

    def _to_param(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _order_body(self, order: OrderRequest) -> dict[str, Any]:
        side = "bid" if order.side == "buy" else "ask"
        body: dict[str, Any] = {"market": order.symbol, "side": side}
        if order.type == "limit":
            body |= {"volume": fmt(order.quantity), "price": fmt(order.price),
                     "ord_type": "limit"}
        elif order.side == "buy":
            if order.quote_amount is None:
                raise ValueError("an Upbit market buy is sized by quote_amount (KRW to spend)")
            body |= {"price": fmt(order.quote_amount), "ord_type": "price"}
        else:
            body |= {"volume": fmt(order.quantity), "ord_type": "market"}
        body["identifier"] = order.client_order_id
        return body

    def _submit(self, order: OrderRequest) -> OrderInfo:
        payload = self._private("POST", "/v1/orders", group="order",
                                body=self._order_body(order), is_order=True)
        return kr_parse.parse_order(payload)

    def cancel_order(self, symbol: str, client_order_id: str | None = None,
                     exchange_order_id: str | None = None) -> OrderInfo:
        """Request cancellation; the answer is the order *before* the cancel (Upbit cancels
        asynchronously), so poll ``fetch_order`` for the final ``cancelled`` state."""
        params = [("uuid", exchange_order_id)] if exchange_order_id else \
            [("identifier", client_order_id)]
        return kr_parse.parse_order(self._private("DELETE", "/v1/order", params=params,
                                                  is_order=True))

    def open_orders(self, symbol: str | None = None) -> list[OrderInfo]:
        params: list[tuple[str, Any]] = [("market", symbol)] if symbol else []
        params += [("states[]", "wait"), ("states[]", "watch"), ("limit", 100)]
        rows = self._private("GET", "/v1/orders/open", params=params)
        return [kr_parse.parse_order(r) for r in rows]
