"""Order requests that Binance spot and USDⓈ-M futures answer alike: finding an order by
``orderId`` or ``origClientOrderId`` (the newest of that client id), and an account's fills for
``myTrades`` / ``userTrades``, oldest trade first."""

from __future__ import annotations

from aiohttp import web

from simulator.accounts import Account, Fill, Order
from simulator.binance.common import berror


class BinanceOrders:
    """A mixin of the Binance venues (it needs ``symbol_market``)."""

    def find_order(self, params, account: Account) -> Order | None:
        symbol = params.get("symbol")
        if params.get("orderId"):
            return next(
                (
                    o
                    for o in account.orders.values()
                    if str(o.id) == params["orderId"] and o.symbol == symbol
                ),
                None,
            )
        if params.get("origClientOrderId"):
            matches = [
                o
                for o in account.orders.values()
                if o.client_id == params["origClientOrderId"] and o.symbol == symbol
            ]
            return max(matches, key=lambda o: o.id) if matches else None
        return None

    def order_lookup(
        self, params, account: Account, *, require_id: bool = False
    ) -> tuple[Order | None, web.Response | None]:
        """(the order or None, None), or (None, the error answer) for a query or a cancel."""
        _, err = self.symbol_market(params)
        if err:
            return None, err
        if require_id and not params.get("orderId") and not params.get("origClientOrderId"):
            return None, berror(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        return self.find_order(params, account), None

    def fills_of(self, params, account: Account, symbol: str) -> list[tuple[Order, Fill]]:
        """The account's fills on ``symbol`` (of ``orderId`` when given), by trade id."""
        pairs = [
            (order, fill)
            for order in account.orders.values()
            if order.symbol == symbol
            and not (params.get("orderId") and str(order.id) != params["orderId"])
            for fill in order.fills
        ]
        return sorted(pairs, key=lambda pair: pair[1].trade_id)
