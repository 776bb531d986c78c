"""The Bithumb protocol (the "new" v1/v2 API): Upbit's design with Bithumb's differences, as
listed in shared/exchanges/bithumb.md.

* Candles: ``/v1/candles/minutes/{1,3,5,10,15,30,60,240}``, ``days``, ``weeks``, ``months`` (no
  seconds, no years), newest first, ``count`` at most 200. ``to`` is the exclusive end as a
  **naive KST** wall-clock time (``2026-07-30T16:48:00`` or with a space); a zone suffix (``Z``,
  ``+09:00``) is refused with 400. Days, weeks, months and the 240-minute grid open on KST
  boundaries (a day at 15:00 UTC; 240 minutes at 03, 07, 11, 15, 19, 23 UTC).
* Auth: JWT with a required ``timestamp`` claim (ms, within 60 s of the clock) and Upbit's
  ``query_hash``; Bithumb's own 401 names and messages (auth.py).
* Orders: ``POST /v2/orders`` (``order_type``, ``client_order_id``) answers an acknowledgement
  with ``order_id`` (``C`` + 19 digits; trade ids have the same form, e.g.
  ``C0101000000001713006``: the simulator's start second times 10^5 plus a counter, so ids do
  not repeat across restarts); ``GET /v1/order?uuid=|client_order_id=`` the order with
  its trades; ``DELETE /v2/order?order_id=|client_order_id=`` answers ``{order_id, created_at}``;
  ``GET /v1/orders`` lists (``states[]``, ``uuids[]``, ``client_order_ids[]``, ``limit`` <= 100).
* Errors ``{"error": {"name", "message"}}`` (apidocs "API 주요 에러 코드"): an unknown market in
  an order is ``invalid_parameter``; a limit price off the KRW tick ``invalid_price_bid|ask``; a
  volume with more decimals than the market's step (8) ``invalid_parameter`` (the docs name no
  precision error: UNCONFIRMED); a total under 5,000 KRW ``under_min_total_bid|ask`` (Bithumb's
  table has no minimum-total code, so the name is Upbit's: UNCONFIRMED). Quotation endpoints
  answer an unknown market with ``{"name": 404, "message": "Code not found"}``.
* Rate limits per category (150/s public, 140/s private); no ``Remaining-Req`` header.
* WebSockets: ``/websocket/v1`` (trade, ticker, orderbook with a µs ``timestamp``: no candles) and
  ``/websocket/v2/private`` (``myOrder`` with the v2 names, ``myAsset``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal, InvalidOperation

from aiohttp import web

from simulator.accounts import Order, dec
from simulator.bithumb.auth import BithumbJwtVerifier
from simulator.market import UPBIT_KRW_BANDS, Frame, krw_tick
from simulator.matching import OrderIds
from simulator.upbit.rest import MINUTE_UNITS, UpbitVenue
from simulator.upbit.ws import UpbitStreams
from simulator.venue import KST, fmt, kst_iso

KST_MS = 9 * 3_600_000
STP_TYPE = "cancel_taker"
# category -> (calls per second, unused "min" of Upbit's header)
GROUPS = {
    "market": (150, 0),
    "candles": (150, 0),
    "trades": (150, 0),
    "ticker": (150, 0),
    "orderbook": (150, 0),
    "default": (140, 0),
    "order": (140, 0),
    "cancel": (140, 0),
}
#: Bithumb's KRW price units: Upbit's from 100 KRW up; the rows below differ.
BITHUMB_KRW_BANDS = (*UPBIT_KRW_BANDS[:7], (10, 0.01), (1, 0.001))


def bithumb_krw_tick(price: float) -> float:
    return krw_tick(price, BITHUMB_KRW_BANDS)


def parse_kst(text: str) -> int:
    """Bithumb's ``to``: a naive KST wall-clock time; a zone suffix is refused (ValueError)."""
    stamp = dt.datetime.fromisoformat(text.strip().replace(" ", "T"))
    if stamp.tzinfo is not None or text.strip().endswith("Z"):
        raise ValueError("to is a KST wall-clock time without a zone")
    return int(stamp.replace(tzinfo=KST).timestamp() * 1000)


class BithumbIds(OrderIds):
    """Bithumb's ``C0101`` + 15 digit ids, orders and trades from one sequence numbered from
    ``base`` (the start second times 10^5: unique across restarts a second apart, up to
    100,000 ids a second)."""

    def __init__(self, seed: int, base: int | None = None) -> None:
        super().__init__(seed)
        self.base = int(time.time()) * 100_000 if base is None else base
        self.next_number = 1

    def new_uuid(self) -> str:
        """The next id: an order's (through ``new_ids``) or a fill's trade id."""
        number = self.next_number
        self.next_number += 1
        return f"C0101{self.base + number:015d}"


class BithumbVenue(UpbitVenue):
    name = "bithumb"
    GROUPS = GROUPS
    REMAINING_REQ = False
    ORD_TYPE = "order_type"
    CLIENT_ID = "client_order_id"
    ORDER_ID_PARAMS = ("uuid", "order_id")
    INVALID = "invalid_parameter"
    CLIENT_ID_UNIQUE_FOREVER = False

    def __init__(self, ctx, markets, accounts, **kw) -> None:
        super().__init__(ctx, markets, accounts, fee="0.0025", require_timestamp=True, **kw)
        self.ids = self.engine.ids = BithumbIds(ctx.seed)
        self.jwt = BithumbJwtVerifier({a.key: a.secret for a in accounts},
                                      clock_ms=ctx.clock_ms)

    def make_streams(self):
        return BithumbStreams(self)

    def routes(self, app: web.Application) -> None:
        get, add = app.router.add_get, app.router.add_route
        get("/v1/market/all", self._public("market", self.market_all))
        for unit in MINUTE_UNITS:
            frame = Frame("m", unit, KST_MS if unit == 240 else 0)
            get(f"/v1/candles/minutes/{unit}", self._public("candles", self.candles, frame))
        for path, unit in (("days", "d"), ("weeks", "w"), ("months", "M")):
            frame = Frame(unit, 1, KST_MS)
            get(f"/v1/candles/{path}", self._public("candles", self.candles, frame))
        get("/v1/ticker", self._public("ticker", self.ticker))
        get("/v1/trades/ticks", self._public("trades", self.trades_ticks))
        get("/v1/orderbook", self._public("orderbook", self.orderbook))
        get("/v1/accounts", self._private("default", self.balances))
        get("/v1/orders/chance", self._private("default", self.chance))
        add("POST", "/v2/orders", self._private("order", self.create_order))
        get("/v1/order", self._private("default", self.get_order))
        add("DELETE", "/v2/order", self._private("cancel", self.cancel_order))
        get("/v1/orders", self._private("default", self.list_orders))
        get("/websocket/v1", self.streams.public)
        get("/websocket/v2/private", self.streams.private)

    def parse_to(self, text: str) -> int:
        return parse_kst(text)

    def price_tick(self, price: Decimal) -> Decimal:
        return dec(bithumb_krw_tick(float(price)))

    def order_id(self, oid: int, uid: str) -> str:
        return uid  # BithumbIds makes it Bithumb's form

    def create_order(self, account, params: dict) -> web.Response:
        """Upbit's checks, after refusing a volume finer than the market's quantity step."""
        market = self._market(params.get("market"))
        try:
            volume = dec(params["volume"]) if params.get("volume") not in (None, "") else None
        except InvalidOperation:
            volume = None  # the shared checks answer an unreadable volume
        if market is not None and volume is not None and volume.is_finite():
            step = dec(market.spec.step)
            if volume % step != 0:
                return self._invalid(f"volume {params['volume']} has more decimals than the "
                                     f"market's quantity step {fmt(step)}")
        return super().create_order(account, params)

    def order_json(self, order: Order, **kw) -> dict:
        """Upbit's order object plus ``stp_type``, which Bithumb prints on every order placed
        since 2026-05-07: ``cancel_taker`` (a new order that would trade with the account's
        own resting one has the crossing quantity cancelled)."""
        return super().order_json(order, **kw) | {"stp_type": STP_TYPE}

    def chance(self, account, params: dict) -> web.Response:
        """Upbit's order rules plus Bithumb's ``price_unit`` (the market's tick at its price)
        in ``market.bid`` and ``market.ask``."""
        resp = super().chance(account, params)
        market = self._market(params.get("market"))
        if resp.status != 200 or market is None:
            return resp
        body = json.loads(resp.body)
        unit = fmt(self.price_tick(dec(market.last_price)))
        for side in ("bid", "ask"):
            body["market"][side]["price_unit"] = unit
        return web.json_response(body)

    def placed(self, order: Order) -> web.Response:
        """v2 answers an acknowledgement only (read the order back with GET /v1/order)."""
        ack = {
            "order_id": order.uuid,
            "client_order_id": order.client_id,
            "market": order.symbol,
            "side": "bid" if order.side == "buy" else "ask",
            "order_type": order.extra["ord_type"],
            "created_at": kst_iso(order.created_ms),
            "stp_type": STP_TYPE,
        }
        return web.json_response(ack, status=201)

    def cancelled(self, order: Order, before: dict) -> web.Response:
        return web.json_response({"order_id": order.uuid, "created_at": kst_iso(order.created_ms)})

    def list_orders(self, account, params: dict) -> web.Response:
        states = {"wait", "watch", "done", "cancel"}
        return self._list(account, params, states, {"wait"}, 100)


#: v1 (Upbit) myOrder names -> Bithumb's private WebSocket v2 names.
V2_NAMES = {
    "uuid": "order_id",
    "identifier": "client_order_id",
    "trade_uuid": "trade_id",
    "remaining_volume": "remaining_quantity",
    "executed_volume": "executed_quantity",
    "executed_funds": "executed_amount",
}
V1_ONLY = ("ask_bid", "price", "volume", "trades_count", "avg_price", "trade_fee", "is_maker",
           "smp_type", "prevented_volume", "prevented_locked", "locked")


class BithumbStreams(UpbitStreams):
    public_types = frozenset({"trade", "ticker", "orderbook"})
    asset_amount = staticmethod(fmt)

    def _book_frame(self, market, stream_type: str) -> dict:
        """Upbit's frame with Bithumb's microsecond ``timestamp`` (seen in captured frames,
        shared/exchanges/samples/bithumb_ws_orderbook.json; the docs do not say)."""
        frame = super()._book_frame(market, stream_type)
        return frame | {"timestamp": frame["timestamp"] * 1000}

    def _my_order(self, order: Order, fill, state: str) -> dict:
        v1 = super()._my_order(order, fill, state)
        frame = {V2_NAMES.get(k, k): v for k, v in v1.items() if k not in V1_ONLY}
        price = order.extra.get("input_price")
        frame |= {
            "side": order.side,
            "order_price": float(price) if price is not None else None,
            "order_quantity": v1["volume"],
            "order_amount": float(order.quote_qty or (price or 0) * (order.qty or 0)),
            "trade_price": float(fill.price) if fill else None,
            "trade_quantity": float(fill.qty) if fill else None,
            "trade_amount": float(fill.quote) if fill else None,
        }
        return frame
