"""The Binance spot protocol: ``/api/v3/...`` REST, market streams and the WebSocket API user
data stream (``userDataStream.subscribe.signature``; the REST listenKey was retired in 2026).

Orders: LIMIT (GTC/IOC/FOK), MARKET (``quantity`` or ``quoteOrderQty``) and LIMIT_MAKER, checked
against PRICE_FILTER, LOT_SIZE and NOTIONAL; ``newClientOrderId`` is unique among open orders.
"""

from __future__ import annotations

import json
import string
from decimal import Decimal, InvalidOperation

import numpy as np
from aiohttp import web

from simulator.accounts import Account, Order, OrderError, dec, quantize_to
from simulator.balances import FeeModel, SpotEngine
from simulator.binance_common import BinanceBase, berror, missing
from simulator.binance_user import SpotUserStream
from simulator.market import tick_of
from simulator.streams import Connection
from simulator.venue import fixed

STATUS = {"open": "NEW", "filled": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED"}
MIN_NOTIONAL = Decimal(5)
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def d8(value) -> str:
    return fixed(value, 8)


class BinanceSpotVenue(SpotUserStream, BinanceBase):
    name = "binance"

    def __init__(
        self, ctx, markets, accounts: list[Account], *, spread_bps: float = 4.0, fee: str = "0.001"
    ) -> None:
        super().__init__(ctx, markets, accounts, spread_bps=spread_bps)
        self.fee = dec(fee)
        self.engine = SpotEngine(
            markets,
            FeeModel(self.fee, self.fee, in_quote=False),
            spread_bps=spread_bps,
            seed=ctx.seed,
            clock_ms=ctx.clock_ms,
        )
        self.api_conns: set[Connection] = set()
        self.next_subscription = 0
        for account in accounts:
            account.listeners.append(
                lambda kind, event, a=account: self._on_account(a, kind, event)
            )

    def routes(self, app: web.Application) -> None:
        e, get, add = self.endpoint, app.router.add_get, app.router.add_route
        get("/api/v3/ping", e(1, self.ping))
        get("/api/v3/time", e(1, self.server_time))
        get("/api/v3/exchangeInfo", e(20, self.exchange_info))
        get("/api/v3/klines", e(2, self.klines))
        get("/api/v3/trades", e(25, self.trades))
        get("/api/v3/ticker/24hr", e(2, self.ticker_24hr))
        get("/api/v3/ticker/price", e(2, self.ticker_price))
        get("/api/v3/account", e(20, self.account, signed=True))
        add("POST", "/api/v3/order", e(1, self.new_order, signed=True, is_order=True))
        get("/api/v3/order", e(4, self.query_order, signed=True))
        add("DELETE", "/api/v3/order", e(1, self.cancel_order, signed=True))
        get("/api/v3/openOrders", e(6, self.open_orders, signed=True))
        get("/api/v3/myTrades", e(20, self.my_trades, signed=True))
        get("/ws", self.raw_ws)
        get("/ws/{streams:.*}", self.raw_ws)
        get("/stream", self.combined_ws)
        get("/ws-api/v3", self.ws_api)

    # ---- market data --------------------------------------------------------------------------

    def _symbol_info(self, market) -> dict:
        spec = market.spec
        tick, step = d8(tick_of(spec, market.last_price)), d8(spec.step)
        return {
            "symbol": spec.symbol,
            "status": "TRADING",
            "baseAsset": spec.base,
            "baseAssetPrecision": 8,
            "quoteAsset": spec.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": tick,
                    "maxPrice": d8(1_000_000),
                    "tickSize": tick,
                },
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": d8(9_000), "stepSize": step},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": d8(0),
                    "maxQty": d8(9_000),
                    "stepSize": d8(0),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": d8(MIN_NOTIONAL),
                    "applyMinToMarket": True,
                    "maxNotional": d8(9_000_000),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": [
                "NONE",
                "EXPIRE_TAKER",
                "EXPIRE_MAKER",
                "EXPIRE_BOTH",
            ],
        }

    def exchange_info(self, params, account) -> web.Response:
        names = list(self.markets)
        if params.get("symbol"):
            names = [params["symbol"]]
        elif params.get("symbols"):
            try:
                names = json.loads(params["symbols"])
            except json.JSONDecodeError:
                return berror(400, -1100, "Illegal characters found in parameter 'symbols'.")
        if any(n not in self.markets for n in names):
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now(),
                "rateLimits": RATE_LIMITS,
                "exchangeFilters": [],
                "symbols": [self._symbol_info(self.markets[n]) for n in names],
            }
        )

    def trades(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        limit = min(max(int(params.get("limit", "500")), 1), 1000)
        t = market.trades(max(0, market.visible - limit))
        return web.json_response(
            [
                {
                    "id": int(t["id"][i]),
                    "price": self.px(market, t["price"][i]),
                    "qty": self.qx(market, t["qty"][i]),
                    "quoteQty": d8(float(t["price"][i]) * float(t["qty"][i])),
                    "time": int(t["ts"][i]),
                    "isBuyerMaker": bool(t["buyer_maker"][i]),
                    "isBestMatch": True,
                }
                for i in range(len(t["ts"]))
            ]
        )

    def _ticker(self, market) -> dict:
        now = self.now()
        t = market.trades()
        lo = int(np.searchsorted(t["ts"], now - 86_400_000, side="right"))
        price, qty = t["price"][lo:], t["qty"][lo:]
        bid, ask = self.engine.quote_prices(market.symbol)
        last = market.last_price
        if len(price) == 0:
            price, qty = np.array([last]), np.array([0.0])
        open_ = float(price[0])
        vol = float(qty.sum())
        quote = float((price * qty).sum())
        return {
            "symbol": market.symbol,
            "priceChange": self.px(market, last - open_),
            "priceChangePercent": f"{(last - open_) / open_ * 100:.3f}",
            "weightedAvgPrice": self.px(market, quote / vol if vol else last),
            "prevClosePrice": self.px(market, float(t["price"][lo - 1]) if lo else open_),
            "lastPrice": self.px(market, last),
            "lastQty": self.qx(market, t["qty"][-1]),
            "bidPrice": d8(bid),
            "bidQty": self.qx(market, market.spec.volume_1m),
            "askPrice": d8(ask),
            "askQty": self.qx(market, market.spec.volume_1m),
            "openPrice": self.px(market, open_),
            "highPrice": self.px(market, price.max()),
            "lowPrice": self.px(market, price.min()),
            "volume": self.qx(market, vol),
            "quoteVolume": d8(quote),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": lo + 1,
            "lastId": len(t["ts"]),
            "count": len(t["ts"]) - lo,
        }

    def ticker_24hr(self, params, account) -> web.Response:
        if params.get("symbol"):
            market, err = self.symbol_market(params)
            return err or web.json_response(self._ticker(market))
        return web.json_response([self._ticker(m) for m in self.markets.values()])

    def ticker_price(self, params, account) -> web.Response:
        rows = [
            {"symbol": m.symbol, "price": self.px(m, m.last_price)}
            for m in self.markets.values()
            if params.get("symbol") in (None, m.symbol)
        ]
        if params.get("symbol") and not rows:
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response(rows[0] if params.get("symbol") else rows)

    # ---- account and orders -------------------------------------------------------------------

    def account(self, params, account: Account) -> web.Response:
        rate = d8(self.fee)
        balances = [
            {"asset": a, "free": d8(f), "locked": d8(lk)} for a, (f, lk) in account.balances.items()
        ]
        if params.get("omitZeroBalances") == "true":
            balances = [b for b in balances if Decimal(b["free"]) or Decimal(b["locked"])]
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": d8(0), "seller": d8(0)},
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self.now(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 1,
            }
        )

    def _client_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(self.engine.rng.choice(alphabet) for _ in range(22))

    def new_order(self, params, account: Account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        side, kind = params.get("side"), params.get("type")
        for name in ("side", "type"):
            if not params.get(name):
                return missing(name)
        if side not in ("BUY", "SELL") or kind not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            return berror(
                400,
                -1116 if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER") else -1117,
                "Invalid orderType." if side in ("BUY", "SELL") else "Invalid side.",
            )
        try:
            qty = dec(params["quantity"]) if params.get("quantity") else None
            quote_qty = dec(params["quoteOrderQty"]) if params.get("quoteOrderQty") else None
            price = dec(params["price"]) if params.get("price") else None
        except InvalidOperation:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        tif = params.get("timeInForce")
        if kind in ("LIMIT", "LIMIT_MAKER"):
            for name, value in (("price", price), ("quantity", qty)):
                if value is None:
                    return missing(name)
            if kind == "LIMIT" and tif not in ("GTC", "IOC", "FOK"):
                return (
                    missing("timeInForce")
                    if not tif
                    else berror(400, -1115, "Invalid timeInForce.")
                )
        elif (qty is None) == (quote_qty is None):
            return berror(
                400,
                -1102,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            )
        spec = market.spec
        bid, ask = self.engine.quote_prices(market.symbol)
        tick, step = dec(tick_of(spec, market.last_price)), dec(spec.step)
        if price is not None and (price <= 0 or price % tick):
            return berror(400, -1013, "Filter failure: PRICE_FILTER")
        if qty is not None and (qty <= 0 or qty % step):
            return berror(400, -1013, "Filter failure: LOT_SIZE")
        notional = (
            quote_qty if quote_qty is not None else qty * (price or (ask if side == "BUY" else bid))
        )
        if notional < MIN_NOTIONAL:
            return berror(400, -1013, "Filter failure: NOTIONAL")
        client_id = params.get("newClientOrderId") or self._client_id()
        if any(o.client_id == client_id for o in account.open_orders()):
            return berror(400, -2010, "Duplicate order sent.")
        if kind == "LIMIT_MAKER" and (
            (side == "BUY" and price >= ask) or (side == "SELL" and price <= bid)
        ):
            return berror(400, -2010, "Order would immediately match and take.")
        oid, uid = self.engine.new_ids()
        order = Order(
            oid,
            uid,
            market.symbol,
            side.lower(),
            "limit" if kind != "MARKET" else "market",
            price,
            qty,
            quote_qty if side == "BUY" else None,
            client_id,
            self.now(),
            time_in_force={"IOC": "ioc", "FOK": "fok"}.get(
                tif or "", "post_only" if kind == "LIMIT_MAKER" else None
            ),
            extra={
                "type": kind,
                "tif": tif or "GTC",
                "quote_in": quote_qty,
            },
        )
        if side == "SELL" and quote_qty is not None:
            order.qty = quantize_to(quote_qty / bid, step)
        try:
            self.engine.place(account, order)
        except OrderError:
            return berror(400, -2010, "Account has insufficient balance for requested action.")
        resp_type = params.get("newOrderRespType") or (
            "FULL" if kind in ("LIMIT", "MARKET") else "ACK"
        )
        return web.json_response(self._order_response(order, resp_type))

    def _order_json(self, order: Order) -> dict:
        market = self.markets[order.symbol]
        quote_in = order.extra.get("quote_in")
        return {
            "symbol": order.symbol,
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.client_id,
            "price": d8(order.price or 0),
            "origQty": d8(order.qty if order.qty is not None else order.executed_qty),
            "executedQty": d8(order.executed_qty),
            "origQuoteOrderQty": d8(quote_in or 0),
            "cummulativeQuoteQty": d8(order.executed_quote),
            "status": STATUS[order.status],
            "timeInForce": order.extra["tif"],
            "type": order.extra["type"],
            "side": order.side.upper(),
            "workingTime": order.created_ms,
            "selfTradePreventionMode": "NONE",
            "_market": market,
        }

    def _order_response(self, order: Order, resp_type: str) -> dict:
        base = {
            "symbol": order.symbol,
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.client_id,
            "transactTime": order.created_ms,
        }
        if resp_type == "ACK":
            return base
        row = self._order_json(order)
        row.pop("_market")
        row = base | {k: v for k, v in row.items() if k not in base}
        if resp_type == "FULL":
            row["fills"] = [
                {
                    "price": d8(f.price),
                    "qty": d8(f.qty),
                    "commission": d8(f.fee),
                    "commissionAsset": f.fee_asset,
                    "tradeId": f.trade_id,
                }
                for f in order.fills
            ]
        return row

    def _find(self, params, account: Account) -> Order | None:
        if params.get("orderId"):
            return next(
                (
                    o
                    for o in account.orders.values()
                    if str(o.id) == params["orderId"] and o.symbol == params.get("symbol")
                ),
                None,
            )
        if params.get("origClientOrderId"):
            matches = [
                o
                for o in account.orders.values()
                if o.client_id == params["origClientOrderId"] and o.symbol == params.get("symbol")
            ]
            return max(matches, key=lambda o: o.id) if matches else None
        return None

    def _query_row(self, order: Order) -> dict:
        row = self._order_json(order)
        row.pop("_market")
        row |= {
            "stopPrice": d8(0),
            "icebergQty": d8(0),
            "time": order.created_ms,
            "updateTime": order.updated_ms,
            "isWorking": True,
        }
        return row

    def query_order(self, params, account: Account) -> web.Response:
        _, err = self.symbol_market(params)
        if err:
            return err
        if not params.get("orderId") and not params.get("origClientOrderId"):
            return berror(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        order = self._find(params, account)
        if order is None:
            return berror(400, -2013, "Order does not exist.")
        return web.json_response(self._query_row(order))

    def cancel_order(self, params, account: Account) -> web.Response:
        _, err = self.symbol_market(params)
        if err:
            return err
        order = self._find(params, account)
        if order is None or not order.is_open:
            return berror(400, -2011, "Unknown order sent.")
        order.extra["cancel_id"] = params.get("newClientOrderId") or self._client_id()
        self.engine.cancel(account, order)
        row = self._order_json(order)
        row.pop("_market")
        row = {
            "symbol": order.symbol,
            "origClientOrderId": order.client_id,
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.extra["cancel_id"],
            "transactTime": self.now(),
        } | {k: v for k, v in row.items() if k not in ("clientOrderId", "workingTime")}
        return web.json_response(row)

    def open_orders(self, params, account: Account) -> web.Response:
        symbol = params.get("symbol")
        if symbol and symbol not in self.markets:
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response([self._query_row(o) for o in account.open_orders(symbol)])

    def my_trades(self, params, account: Account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        rows = []
        for order in account.orders.values():
            if order.symbol != market.symbol or (
                params.get("orderId") and str(order.id) != params["orderId"]
            ):
                continue
            for f in order.fills:
                rows.append(
                    {
                        "symbol": order.symbol,
                        "id": f.trade_id,
                        "orderId": order.id,
                        "orderListId": -1,
                        "price": d8(f.price),
                        "qty": d8(f.qty),
                        "quoteQty": d8(f.quote),
                        "commission": d8(f.fee),
                        "commissionAsset": f.fee_asset,
                        "time": f.ts_ms,
                        "isBuyer": order.side == "buy",
                        "isMaker": f.is_maker,
                        "isBestMatch": True,
                    }
                )
        rows.sort(key=lambda r: r["id"])
        limit = min(max(int(params.get("limit", "500")), 1), 1000)
        return web.json_response(rows[-limit:])

    def on_trades(self, symbol: str, trades: dict) -> None:
        self.engine.on_trades(symbol, trades["price"], list(self.accounts.values()))
        self.push_trades(symbol, trades)
