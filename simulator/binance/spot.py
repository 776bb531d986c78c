"""The Binance spot protocol: ``/api/v3/...`` REST, market streams and the WebSocket API user
data stream (``userDataStream.subscribe.signature``; the REST listenKey was retired in 2026).

Orders: LIMIT (GTC/IOC/FOK), MARKET (``quantity`` or ``quoteOrderQty``) and LIMIT_MAKER, checked
against PRICE_FILTER, LOT_SIZE and NOTIONAL (``-1013 "Filter failure: <name>"``); more than 8
decimals is ``-1111 "Parameter '<name>' has too much precision."``; ``newClientOrderId`` is
unique among open orders.
"""

from __future__ import annotations

import string
from decimal import Decimal, InvalidOperation

from aiohttp import web

from simulator.accounts import Account, Order, OrderError, dec, listen, quantize_to
from simulator.balances import FeeModel, SpotEngine
from simulator.binance.common import BinanceBase, berror, missing
from simulator.binance.futures_rules import places
from simulator.binance.market_rest import BinanceMarketRest, spot_depth_weight
from simulator.binance.orders import BinanceOrders
from simulator.binance.protocol import STATUS
from simulator.binance.spot_market import MIN_NOTIONAL, SpotMarketData, d8
from simulator.binance.spot_user import SpotUserStream
from simulator.market import tick_of
from simulator.streams import Connection


class BinanceSpotVenue(
    SpotMarketData, BinanceMarketRest, SpotUserStream, BinanceOrders, BinanceBase
):
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
        listen(accounts, self._on_account)

    def routes(self, app: web.Application) -> None:
        e, get, add = self.endpoint, app.router.add_get, app.router.add_route
        get("/api/v3/ping", e(1, self.ping))
        get("/api/v3/time", e(1, self.server_time))
        get("/api/v3/exchangeInfo", e(20, self.exchange_info))
        get("/api/v3/klines", e(2, self.klines))
        get("/api/v3/trades", e(25, self.trades))
        get("/api/v3/ticker/24hr", e(lambda q: 2 if q.get("symbol") else 80, self.ticker_24hr))
        get("/api/v3/depth", e(spot_depth_weight, self.depth))
        get("/api/v3/aggTrades", e(4, self.agg_trades))
        get("/api/v3/ticker/price", e(2, self.ticker_price))
        get("/api/v3/account", e(20, self.account, signed=True))
        add("POST", "/api/v3/order", e(1, self.new_order, signed=True, is_order=True))
        get("/api/v3/order", e(4, self.query_order, signed=True))
        add("DELETE", "/api/v3/order", e(1, self.cancel_order, signed=True))
        get("/api/v3/openOrders", e(6, self.open_orders, signed=True))
        get("/api/v3/allOrders", e(20, self.all_orders, signed=True))
        get("/api/v3/myTrades", e(20, self.my_trades, signed=True))
        get("/ws", self.raw_ws)
        get("/ws/{streams:.*}", self.raw_ws)
        get("/stream", self.combined_ws)
        get("/ws-api/v3", self.ws_api)

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
        for name, value in (("quantity", qty), ("quoteOrderQty", quote_qty), ("price", price)):
            # Spot checks precision against the assets' 8 decimals (baseAssetPrecision /
            # quotePrecision); within them, an off-grid value is a -1013 filter failure.
            if value is not None and places(value) > 8:
                return berror(400, -1111, f"Parameter '{name}' has too much precision.")
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
        order, err = self.order_lookup(params, account, require_id=True)
        if err:
            return err
        if order is None:
            return berror(400, -2013, "Order does not exist.")
        return web.json_response(self._query_row(order))

    def cancel_order(self, params, account: Account) -> web.Response:
        order, err = self.order_lookup(params, account)
        if err:
            return err
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

    def all_orders(self, params, account: Account) -> web.Response:
        """``GET /api/v3/allOrders`` (weight 20): the account's orders on ``symbol``, oldest
        first, from ``orderId`` on or within ``startTime``–``endTime`` (at most 24 h apart),
        at most ``limit`` (default 500, max 1000)."""
        market, err = self.symbol_market(params)
        if err:
            return err
        try:
            limit = min(max(int(params.get("limit") or 500), 1), 1000)
            from_id = int(params.get("orderId") or 0)
            start = int(params.get("startTime") or 0)
            end = int(params["endTime"]) if params.get("endTime") else None
        except ValueError:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        if end is not None and params.get("startTime") and end - start > 86_400_000:
            return berror(400, -1127, "More than 24 hours between startTime and endTime.")
        rows = sorted(
            (
                o
                for o in account.orders.values()
                if o.symbol == market.symbol
                and o.id >= from_id
                and o.created_ms >= start
                and (end is None or o.created_ms <= end)
            ),
            key=lambda o: o.id,
        )
        return web.json_response([self._query_row(o) for o in rows[:limit]])

    def my_trades(self, params, account: Account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        rows = [
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
            for order, f in self.fills_of(params, account, market.symbol)
        ]
        limit = min(max(int(params.get("limit", "500")), 1), 1000)
        return web.json_response(rows[-limit:])

    def on_trades(self, symbol: str, trades: dict) -> None:
        self.engine.on_trades(symbol, trades["price"], list(self.accounts.values()))
        self.push_trades(symbol, trades)
