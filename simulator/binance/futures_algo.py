"""Binance USDⓈ-M conditional orders over REST: ``/fapi/v1/algoOrder`` (``algoType=CONDITIONAL``,
STOP_MARKET / TAKE_PROFIT_MARKET with ``triggerPrice``, ``clientAlgoId``, ``reduceOnly`` or
``closePosition``), its query and cancel, and ``openAlgoOrders``. Matching and triggering are
:class:`simulator.binance.positions.FuturesEngine`'s."""

from __future__ import annotations

import re
from decimal import InvalidOperation

from aiohttp import web

from simulator.accounts import ZERO, OrderError, dec
from simulator.binance.common import berror, missing
from simulator.binance.futures_rules import too_precise
from simulator.binance.positions import AlgoOrder, FuturesAccount
from simulator.market import tick_of

CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


class FuturesAlgoOrders:
    """A mixin of :class:`simulator.binance.futures.FuturesVenue`."""


    def new_algo_order(self, params, account: FuturesAccount) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        for name in ("algoType", "side", "type", "triggerPrice"):
            if not params.get(name):
                return missing(name)
        if params["algoType"] != "CONDITIONAL":
            return berror(400, -1116, "Invalid algoType.")
        side, kind = params["side"], params["type"]
        if side not in ("BUY", "SELL"):
            return berror(400, -1117, "Invalid side.")
        if kind not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            return berror(400, -1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            return berror(400, -4061, "Order's position side does not match user's setting.")
        if params.get("workingType", "CONTRACT_PRICE") != "CONTRACT_PRICE":
            return berror(400, -1116, "Only CONTRACT_PRICE triggers are simulated.")
        close_position = params.get("closePosition", "false").lower() == "true"
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        if close_position and (reduce_only or params.get("quantity")):
            return berror(400, -1106, "Parameter 'quantity' or 'reduceOnly' sent when not "
                                      "required with closePosition.")
        pos = account.position(market.symbol)
        try:
            trigger = dec(params["triggerPrice"])
            qty = abs(pos.amount) if close_position else dec(params.get("quantity") or "0")
        except InvalidOperation:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        spec = market.spec
        if too_precise(market, trigger, None if close_position else qty):
            return berror(400, -1111, "Precision is over the maximum defined for this asset.")
        if trigger <= 0 or trigger % dec(tick_of(spec, market.last_price)):
            return berror(400, -4014, "Price not increased by tick size.")
        if not close_position and (qty <= 0 or qty % dec(spec.step)):
            return (missing("quantity") if qty == 0
                    else berror(400, -4023, "Quantity not increased by step size."))
        if close_position and qty == 0:
            return berror(400, -2022, "ReduceOnly Order is rejected.")
        client_id = params.get("clientAlgoId") or f"sim{self.engine.rng.getrandbits(64):016x}"
        if not CLIENT_ID.match(client_id):
            return berror(400, -4015, "Client order id length should not be more than 36 chars")
        if any(a.client_id == client_id for a in account.open_algo_orders()):
            return berror(400, -4116, "clientOrderId is duplicated")
        algo_id, _ = self.engine.new_ids()
        algo = AlgoOrder(algo_id, client_id, market.symbol, side.lower(), kind, qty, trigger,
                         reduce_only or close_position, self.now(),
                         close_position=close_position)
        try:
            self.engine.place_algo(account, algo)
        except OrderError:
            return berror(400, -2021, "Order would immediately trigger.")
        return web.json_response(self._algo_json(algo, query=False))

    def _algo_json(self, algo: AlgoOrder, *, query: bool = True) -> dict:
        market = self.markets[algo.symbol]
        row = {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_id,
            "algoType": "CONDITIONAL",
            "orderType": algo.type,
            "symbol": algo.symbol,
            "side": algo.side.upper(),
            "positionSide": "BOTH",
            "timeInForce": "GTC",
            "quantity": self.qx(market, algo.qty),
            "algoStatus": algo.status,
            "triggerPrice": self.px(market, algo.trigger),
            "price": self.px(market, 0),
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": algo.close_position,
            "priceProtect": False,
            "reduceOnly": algo.reduce_only,
            "createTime": algo.created_ms,
            "updateTime": algo.updated_ms,
            "triggerTime": algo.trigger_ms,
            "goodTillDate": 0,
        }
        if query:
            order = algo.order
            executed = order.executed_qty if order else ZERO
            row |= {
                "actualOrderId": str(order.id) if order else "",
                "actualPrice": self.px(market, order.executed_quote / executed if executed else 0),
                "tpOrderType": "",
            }
            if order is not None:
                row |= {"actualType": "MARKET", "actualQty": self.qx(market, executed)}
        return row

    def _find_algo(self, params, account: FuturesAccount) -> AlgoOrder | None:
        if params.get("algoId"):
            return next((a for a in account.algo_orders.values()
                         if str(a.algo_id) == params["algoId"]), None)
        matches = [a for a in account.algo_orders.values()
                   if a.client_id == params.get("clientAlgoId")]
        return max(matches, key=lambda a: a.algo_id) if matches else None

    def query_algo_order(self, params, account) -> web.Response:
        if not (params.get("algoId") or params.get("clientAlgoId")):
            return missing("algoId")
        algo = self._find_algo(params, account)
        if algo is None:
            return berror(400, -2013, "Order does not exist.")
        return web.json_response(self._algo_json(algo))

    def cancel_algo_order(self, params, account) -> web.Response:
        if not (params.get("algoId") or params.get("clientAlgoId")):
            return missing("algoId")
        algo = self._find_algo(params, account)
        if algo is None or algo.status != "NEW":
            return berror(400, -2011, "Unknown order sent.")
        self.engine.cancel_algo(account, algo)
        return web.json_response({"algoId": algo.algo_id, "clientAlgoId": algo.client_id,
                                  "code": "200", "msg": "success"})

    def open_algo_orders(self, params, account) -> web.Response:
        if params.get("symbol") and params["symbol"] not in self.markets:
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response([self._algo_json(a)
                                  for a in account.open_algo_orders(params.get("symbol"))])
