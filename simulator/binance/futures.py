"""The Binance USDⓈ-M futures protocol: ``/fapi/...`` REST, ``/market/ws|stream`` and
``/public/ws|stream`` (bookTicker, depth) market streams (the 2026 URL split) and the listenKey
user stream on ``/private/ws?listenKey=...&events=...``.

One-way mode only (``positionSide`` BOTH). Orders: LIMIT (GTC/IOC/FOK/GTX) and MARKET with
``reduceOnly``; conditional STOP_MARKET / TAKE_PROFIT_MARKET on ``/fapi/v1/algoOrder``
(``algoType=CONDITIONAL``, ``triggerPrice``, ``clientAlgoId``, ``reduceOnly`` or
``closePosition``), triggered by this venue's trades; leverage and margin type per symbol;
ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ACCOUNT_CONFIG_UPDATE and ALGO_UPDATE on the user stream.
Mark price and funding (:mod:`simulator.binance.futures_mark`): ``/fapi/v1/premiumIndex`` and
``<symbol>@markPrice[@1s]``; positions' unrealized PnL is marked to it. ``depth``, ``aggTrades``
and ``ticker/24hr``: :mod:`simulator.binance.market_rest`; ``/fapi/v2|v3/account`` and
``leverageBracket``: :mod:`simulator.binance.futures_ledger`; per-symbol precision and minimum
notional: :mod:`simulator.binance.futures_rules`.
"""

from __future__ import annotations

from decimal import InvalidOperation

from aiohttp import web

from simulator.accounts import ZERO, Order, OrderError, dec, listen
from simulator.binance.common import INTERVALS, BinanceBase, berror, missing
from simulator.binance.futures_account import FuturesAccountRequests
from simulator.binance.futures_algo import CLIENT_ID, FuturesAlgoOrders
from simulator.binance.futures_ledger import FuturesLedger
from simulator.binance.futures_mark import FuturesMarkMixin
from simulator.binance.futures_rules import rules_of, too_precise
from simulator.binance.futures_user import FuturesUserStream
from simulator.binance.market_rest import BinanceMarketRest, futures_depth_weight
from simulator.binance.orders import BinanceOrders
from simulator.binance.positions import FuturesAccount, FuturesEngine
from simulator.binance.protocol import STATUS
from simulator.market import tick_of
from simulator.matching import OrderIds
from simulator.streams import Connection
from simulator.venue import fixed

LISTEN_KEY_MS = 60 * 60_000
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]


class FuturesVenue(
    FuturesAccountRequests,
    FuturesLedger,
    BinanceMarketRest,
    FuturesAlgoOrders,
    FuturesMarkMixin,
    FuturesUserStream,
    BinanceOrders,
    BinanceBase,
):
    name = "futures"
    weight_limit = 2400
    kline_limit = 1500
    kline_push_s = 0.25
    order_windows = (("10S", 10), ("1M", 60))
    ping_s = 180.0
    price_places = None
    qty_places = None
    intervals = {k: v for k, v in INTERVALS.items() if k != "1s"}

    def __init__(self, ctx, markets, accounts, *, spread_bps: float = 2.0) -> None:
        accounts = [
            FuturesAccount(a.key, a.secret, {k: v[0] for k, v in a.balances.items()})
            for a in accounts
        ]
        super().__init__(ctx, markets, accounts, spread_bps=spread_bps)
        self.init_marks()
        self.engine = FuturesEngine(
            markets, spread_bps=spread_bps, clock_ms=ctx.clock_ms, ids=OrderIds(ctx.seed + 1),
            mark_fn=self.mark_decimal,
        )
        self.listen_keys: dict[str, tuple[str, int]] = {}  # listenKey -> (api key, expires ms)
        self.user_conns: set[Connection] = set()
        listen(accounts, self._on_account)

    def routes(self, app: web.Application) -> None:
        e, get, add = self.endpoint, app.router.add_get, app.router.add_route
        get("/fapi/v1/ping", e(1, self.ping))
        get("/fapi/v1/time", e(1, self.server_time))
        get("/fapi/v1/exchangeInfo", e(1, self.exchange_info))
        get("/fapi/v1/klines", e(5, self.klines))
        get("/fapi/v1/ticker/price", e(1, self.ticker_price))
        # "Symbol Price Ticker V2": the same rows (symbol, price, time) at a lower weight for
        # all symbols; python-binance 1.0's futures_symbol_ticker calls this one.
        get("/fapi/v2/ticker/price", e(lambda q: 1 if q.get("symbol") else 2, self.ticker_price))
        get("/fapi/v1/ticker/24hr", e(lambda q: 1 if q.get("symbol") else 40, self.ticker_24hr))
        get("/fapi/v1/depth", e(futures_depth_weight, self.depth))
        get("/fapi/v1/aggTrades", e(20, self.agg_trades))
        get("/fapi/v1/trades", e(5, self.recent_trades))
        get("/fapi/v2/account", e(5, self.account_v2, signed=True))
        get("/fapi/v3/account", e(5, self.account_v3, signed=True))
        get("/fapi/v1/leverageBracket", e(1, self.leverage_bracket, signed=True))
        get("/fapi/v1/premiumIndex",
            e(lambda q: 1 if q.get("symbol") else 10, self.premium_index))
        add("POST", "/fapi/v1/leverage", e(1, self.leverage, signed=True))
        add("POST", "/fapi/v1/marginType", e(1, self.margin_type, signed=True))
        get("/fapi/v1/positionSide/dual", e(30, self.get_dual, signed=True))
        add("POST", "/fapi/v1/positionSide/dual", e(1, self.set_dual, signed=True))
        add("POST", "/fapi/v1/order", e(0, self.new_order, signed=True, is_order=True))
        get("/fapi/v1/order", e(1, self.query_order, signed=True))
        add("DELETE", "/fapi/v1/order", e(1, self.cancel_order, signed=True))
        get("/fapi/v1/openOrders", e(1, self.open_orders, signed=True))
        add("POST", "/fapi/v1/algoOrder", e(0, self.new_algo_order, signed=True, is_order=True))
        get("/fapi/v1/algoOrder", e(1, self.query_algo_order, signed=True))
        add("DELETE", "/fapi/v1/algoOrder", e(1, self.cancel_algo_order, signed=True))
        get("/fapi/v1/openAlgoOrders", e(1, self.open_algo_orders, signed=True))
        get("/fapi/v1/userTrades", e(5, self.user_trades, signed=True))
        for version in ("v2", "v3"):
            get(f"/fapi/{version}/positionRisk", e(5, self.position_risk, signed=True))
            get(f"/fapi/{version}/balance", e(5, self.balance, signed=True))
        for method in ("POST", "PUT", "DELETE"):
            add(method, "/fapi/v1/listenKey", e(1, self._listen_key_handler(method), key_only=True))
        get("/market/ws", self.market_raw_ws)
        get("/market/ws/{streams:.*}", self.market_raw_ws)
        get("/market/stream", self.market_combined_ws)
        get("/public/ws", self.public_raw_ws)
        get("/public/ws/{streams:.*}", self.public_raw_ws)
        get("/public/stream", self.public_combined_ws)
        get("/private/ws", self.user_ws)

    # ---- market data --------------------------------------------------------------------------

    def exchange_info(self, params, account) -> web.Response:
        symbols = []
        for market in self.markets.values():
            spec, rules = market.spec, rules_of(market)
            tick, step = (
                self.px(market, tick_of(spec, market.last_price)),
                self.qx(market, spec.step),
            )
            symbols.append(
                {
                    "symbol": spec.symbol,
                    "pair": spec.symbol,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "baseAsset": spec.base,
                    "quoteAsset": spec.quote,
                    "marginAsset": spec.quote,
                    "pricePrecision": rules.price_precision,
                    "quantityPrecision": rules.quantity_precision,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": tick,
                            "maxPrice": "4529764",
                            "tickSize": tick,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": step,
                            "maxQty": "1000",
                            "stepSize": step,
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": step,
                            "maxQty": "120",
                            "stepSize": step,
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MIN_NOTIONAL", "notional": str(rules.min_notional)},
                        {
                            "filterType": "PERCENT_PRICE",
                            "multiplierUp": "1.0500",
                            "multiplierDown": "0.9500",
                            "multiplierDecimal": "4",
                        },
                    ],
                }
            )
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now(),
                "rateLimits": RATE_LIMITS,
                "exchangeFilters": [],
                "assets": [{"asset": "USDT", "marginAvailable": True}],
                "symbols": symbols,
            }
        )

    def ticker_price(self, params, account) -> web.Response:
        rows = [
            {"symbol": m.symbol, "price": self.px(m, m.last_price), "time": self.now()}
            for m in self.markets.values()
            if params.get("symbol") in (None, m.symbol)
        ]
        if params.get("symbol") and not rows:
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response(rows[0] if params.get("symbol") else rows)

    # ---- orders -------------------------------------------------------------------------------

    def new_order(self, params, account: FuturesAccount) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        for name in ("side", "type", "quantity"):
            if not params.get(name):
                return missing(name)
        side, kind = params["side"], params["type"]
        if side not in ("BUY", "SELL"):
            return berror(400, -1117, "Invalid side.")
        if kind not in ("LIMIT", "MARKET"):
            return berror(400, -1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            return berror(400, -4061, "Order's position side does not match user's setting.")
        try:
            qty = dec(params["quantity"])
            price = dec(params["price"]) if params.get("price") else None
        except InvalidOperation:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        tif = params.get("timeInForce")
        if kind == "LIMIT":
            if price is None:
                return missing("price")
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                return (
                    missing("timeInForce")
                    if not tif
                    else berror(400, -1115, "Invalid timeInForce.")
                )
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        spec, least = market.spec, rules_of(market).min_notional
        if too_precise(market, price, qty):
            return berror(400, -1111, "Precision is over the maximum defined for this asset.")
        if price is not None and (price <= 0 or price % dec(tick_of(spec, market.last_price))):
            return berror(400, -4014, "Price not increased by tick size.")
        if qty <= 0 or qty % dec(spec.step):
            return berror(400, -4023, "Quantity not increased by step size.")
        bid, ask = self.engine.quote_prices(market.symbol)
        if not reduce_only and qty * (price or (ask if side == "BUY" else bid)) < least:
            return berror(
                400,
                -4164,
                f"Order's notional must be no smaller than {least} (unless you choose reduce "
                "only).",
            )
        client_id = (
            params.get("newClientOrderId") or f"sim{self.engine.rng.getrandbits(64):016x}"
        )
        if not CLIENT_ID.match(client_id):
            return berror(400, -4015, "Client order id length should not be more than 36 chars")
        if any(o.client_id == client_id for o in account.open_orders()):
            # -4116 DUPLICATED_CLIENT_ORDER_ID, from the futures error-code table
            return berror(400, -4116, "clientOrderId is duplicated")
        oid, uid = self.engine.new_ids()
        order = Order(
            oid,
            uid,
            market.symbol,
            side.lower(),
            kind.lower(),
            price,
            qty,
            None,
            client_id,
            self.now(),
            time_in_force={"IOC": "ioc", "FOK": "fok", "GTX": "post_only"}.get(tif or ""),
            extra={"type": kind, "tif": tif or "GTC", "reduce_only": reduce_only},
        )
        try:
            self.engine.place(account, order)
        except OrderError as exc:
            if exc.kind == "reduce_only":
                return berror(400, -2022, "ReduceOnly Order is rejected.")
            return berror(400, -2019, "Margin is insufficient.")
        return web.json_response(self._order_json(order))

    def _order_json(self, order: Order) -> dict:
        market = self.markets[order.symbol]
        executed = order.executed_qty
        avg = order.executed_quote / executed if executed else ZERO
        return {
            "orderId": order.id,
            "symbol": order.symbol,
            "status": STATUS[order.status],
            "clientOrderId": order.client_id,
            "price": self.px(market, order.price or 0),
            "avgPrice": self.px(market, avg),
            "origQty": self.qx(market, order.qty),
            "executedQty": self.qx(market, executed),
            "cumQty": self.qx(market, executed),
            "cumQuote": fixed(order.executed_quote, 5),
            "timeInForce": order.extra["tif"],
            "type": order.extra["type"],
            "reduceOnly": order.extra["reduce_only"],
            "closePosition": False,
            "side": order.side.upper(),
            "positionSide": "BOTH",
            "stopPrice": self.px(market, 0),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": order.extra["type"],
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": order.updated_ms,
        }

    def query_order(self, params, account) -> web.Response:
        order, err = self.order_lookup(params, account)
        if err:
            return err
        if order is None:
            return berror(400, -2013, "Order does not exist.")
        return web.json_response(self._order_json(order) | {"time": order.created_ms})

    def cancel_order(self, params, account) -> web.Response:
        order, err = self.order_lookup(params, account)
        if err:
            return err
        if order is None or not order.is_open:
            return berror(400, -2011, "Unknown order sent.")
        self.engine.cancel(account, order)
        return web.json_response(self._order_json(order))

    def open_orders(self, params, account) -> web.Response:
        return web.json_response(
            [
                self._order_json(o) | {"time": o.created_ms}
                for o in account.open_orders(params.get("symbol"))
            ]
        )

    def user_trades(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        rows = [
            {
                "buyer": order.side == "buy",
                "commission": fixed(f.fee, 8),
                "commissionAsset": f.fee_asset,
                "id": f.trade_id,
                "maker": f.is_maker,
                "orderId": order.id,
                "price": self.px(market, f.price),
                "qty": self.qx(market, f.qty),
                "quoteQty": fixed(f.quote, 5),
                "realizedPnl": fixed(order.extra.get("realized", ZERO), 8),
                "side": order.side.upper(),
                "positionSide": "BOTH",
                "symbol": order.symbol,
                "time": f.ts_ms,
            }
            for order, f in self.fills_of(params, account, market.symbol)
        ]
        return web.json_response(rows[-min(int(params.get("limit", "500")), 1000) :])

    def valid_stream(self, name: str) -> bool:
        symbol, _, kind = name.partition("@")
        if self.mark_stream_period(kind) is not None:
            return symbol.upper() in self.markets and symbol == symbol.lower()
        return super().valid_stream(name)

    def on_tick(self, now_ms: int) -> None:
        super().on_tick(now_ms)
        self.push_marks(now_ms)

    def on_trades(self, symbol: str, trades: dict) -> None:
        self.marks.on_trades(symbol, trades["ts"], trades["price"])
        self.engine.on_trades(symbol, trades["price"], list(self.accounts.values()))
        self.push_trades(symbol, trades)
        self._expire_listen_keys()
