"""Binance USDⓈ-M futures (perpetuals). URLs are roots: REST ``https://fapi.binance.com``
(paths ``/fapi/v1|v2|v3/...``), WebSocket ``wss://fstream.binance.com`` with the 2026 routed
paths: ``/market/stream?streams=`` (trades, klines) and ``/private/ws?listenKey=...&events=``.

Orders: ``reduceOnly`` as the string ``"true"``, one-way position mode (``positionSide``
BOTH). Conditional orders (stop-loss ``STOP_MARKET``, take-profit ``TAKE_PROFIT_MARKET``) go
to ``/fapi/v1/algoOrder`` with ``algoType=CONDITIONAL``, ``triggerPrice``, ``clientAlgoId``
and ``reduceOnly`` (``place_stop``/``cancel_stop``/``fetch_stop``/``open_stops``); their
events arrive as ``ALGO_UPDATE``.
The user stream still uses a REST listenKey (60 min, kept alive every ``keepalive_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from . import binance_mark as bm
from . import binance_parse as bp
from .base import (
    CANCELLED,
    Balance,
    MarkPrice,
    OrderInfo,
    OrderRequest,
    PositionInfo,
    StopInfo,
    StopRequest,
    StreamNotice,
    UserEvent,
)
from .binance_base import BinanceAdapter, binance_capabilities
from .errors import ExchangeError
from .outcome import send_once
from .rounding import fmt, round_price, round_quantity
from .ws import StreamSpec, run_stream

log = logging.getLogger(__name__)

FUTURES_CAPABILITIES = binance_capabilities(
    "binance_futures", market_type="perpetual", candles_per_request=1500,
    weight_per_minute=2400, orders_per_10s=300, streams_per_connection=200,
    supports_reduce_only=True, supports_leverage=True, supports_venue_stops=True,
    mark_price=True)

USER_EVENTS = "ORDER_TRADE_UPDATE/ACCOUNT_UPDATE/ALGO_UPDATE/listenKeyExpired"
ALGO_PATH = "/fapi/v1/algoOrder"


class BinanceFuturesAdapter(BinanceAdapter):
    key = "binance_futures"
    capabilities = FUTURES_CAPABILITIES
    DEFAULT_REST_URL = "https://fapi.binance.com"
    DEFAULT_WS_URL = "wss://fstream.binance.com"
    PREFIX = "/fapi/v1"
    STREAM_PATH = "/market/stream"
    TRADE_STREAM = "aggTrade"
    INFO_WEIGHT = 1
    FUTURES = True
    TRADES_PATH = "/fapi/v1/userTrades"
    QUERY_WEIGHT = 1
    TRADES_WEIGHT = 5
    OPEN_WEIGHTS = (1, 40)

    MARK_STREAM = "markPrice@1s"

    def __init__(self, *, keepalive_s: float = 30 * 60.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.keepalive_s = keepalive_s

    # mark price --------------------------------------------------------------------------
    def mark_prices(self, symbols: list[str] | None = None) -> list[MarkPrice]:
        """``GET /fapi/v1/premiumIndex``: one symbol (weight 1), else all (weight 10) cut to
        ``symbols``."""
        if symbols is not None and len(symbols) == 1:
            payload = self._public("/fapi/v1/premiumIndex", [("symbol", symbols[0])], weight=1)
            return bm.parse_premium_index(payload)
        rows = bm.parse_premium_index(self._public("/fapi/v1/premiumIndex", weight=10))
        wanted = None if symbols is None else set(symbols)
        return [r for r in rows if wanted is None or r.symbol in wanted]

    async def stream_mark_prices(self, symbols: list[str]) -> AsyncIterator[MarkPrice]:
        """``<symbol>@markPrice@1s`` of many symbols on one combined ``/market`` stream."""
        spec = self._market_spec([f"{s.lower()}@{self.MARK_STREAM}" for s in symbols])
        async for item in run_stream(spec, self.mark_stream_stats):
            if isinstance(item, MarkPrice):
                yield item

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

    # conditional (algo) orders -----------------------------------------------------------
    def stop_params(self, stop: StopRequest) -> list[tuple[str, Any]]:
        """The ``POST /fapi/v1/algoOrder`` parameters of ``stop`` (before signing): a
        reduce-only market order for ``quantity`` once the last trade price (CONTRACT_PRICE,
        the price the exit guard watches) reaches ``triggerPrice``. The trigger price must
        already be on the tick grid (the caller rounds it in the direction it wants); the
        quantity is rounded down to the step."""
        if stop.side not in ("buy", "sell"):
            raise ValueError(f"side must be buy|sell, got {stop.side!r}")
        if stop.kind not in bp.ALGO_TYPES:
            raise ValueError(f"stop kind must be stop_loss|take_profit, got {stop.kind!r}")
        if not re.fullmatch(self.capabilities.client_order_id_pattern, stop.client_id or ""):
            raise ValueError(f"{self.key}: clientAlgoId {stop.client_id!r} must match "
                             f"{self.capabilities.client_order_id_pattern}")
        info = self.symbol_info(stop.symbol)
        trigger = Decimal(stop.trigger_price)
        if trigger <= 0 or round_price(trigger, info) != trigger:
            raise ValueError(f"{self.key}: trigger price {trigger} of {stop.symbol} is not on "
                             f"the tick grid {info.tick_size}")
        quantity = round_quantity(Decimal(stop.quantity), info)
        if quantity <= 0:
            raise ValueError(f"{self.key}: stop quantity {stop.quantity} rounds to 0")
        return [("algoType", "CONDITIONAL"), ("symbol", stop.symbol),
                ("side", stop.side.upper()), ("type", bp.ALGO_TYPES[stop.kind]),
                ("quantity", fmt(quantity)), ("triggerPrice", fmt(trigger)),
                ("workingType", "CONTRACT_PRICE"), ("reduceOnly", "true"),
                ("clientAlgoId", stop.client_id)]

    def place_stop(self, stop: StopRequest) -> StopInfo:
        """Place a venue stop; like ``place_order`` it never re-sends after a timeout or 5xx:
        it looks the stop up by ``clientAlgoId`` and raises ``OrderStatusUnknown`` when that
        does not settle it."""
        params = self.stop_params(stop)
        return send_once(
            lambda: bp.parse_algo_order(self._signed("POST", ALGO_PATH, params, weight=0,
                                                     orders=1, is_order=True)),
            lambda: self.fetch_stop(stop.symbol, stop.client_id),
            venue=self.key, client_id=stop.client_id, attempts=self.lookup_attempts,
            delay_s=self.lookup_delay_s, sleep=self._sleep, what="stop",
            reconcile="fetch_stop")

    def fetch_stop(self, symbol: str, client_id: str) -> StopInfo:
        """``GET /fapi/v1/algoOrder?clientAlgoId=``: the stop and, once triggered, the id of
        the market order it placed (``order_id``)."""
        raw = self._signed("GET", ALGO_PATH, [("clientAlgoId", client_id)], weight=1)
        return bp.parse_algo_order(raw)

    def cancel_stop(self, symbol: str, client_id: str) -> StopInfo:
        """``DELETE /fapi/v1/algoOrder?clientAlgoId=``. A stop that already triggered or is
        gone raises ``OrderNotFound`` (read it with ``fetch_stop``). The answer names only the
        stop (``algoId``, ``clientAlgoId``): ``side``/``kind`` of the result are not
        meaningful."""
        raw = self._signed("DELETE", ALGO_PATH, [("clientAlgoId", client_id)], weight=1,
                           is_order=True)
        return StopInfo(stop_id=str(raw.get("algoId") or ""),
                        client_id=str(raw.get("clientAlgoId") or client_id), symbol=symbol,
                        side="sell", kind="", status=CANCELLED, trigger_price=None,
                        quantity=None, raw=raw)

    def open_stops(self, symbol: str | None = None) -> list[StopInfo]:
        rows = self._signed("GET", "/fapi/v1/openAlgoOrders",
                            [("symbol", symbol)] if symbol else [],
                            weight=self.OPEN_WEIGHTS[0 if symbol else 1])
        return [bp.parse_algo_order(r) for r in rows]

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
        events = run_stream(spec, self.user_stream_stats)
        try:
            async for event in events:
                yield event
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await events.aclose()  # the connection closes now, not when collected
