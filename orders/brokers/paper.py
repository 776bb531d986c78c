"""Paper execution with the backtester's fill model (``strategies.trade_math``): a market order
fills at the last price moved against the trader by ``slippage_bps``, paying the taker
``fee_rate`` on the fill's notional; a limit order that crosses the last price fills the same
way but never beyond its limit; one that does not cross rests and fills at its limit (maker fee)
when a later price reaches it. Pure: no database, no network."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from markets.exchanges.base import (
    CANCELLED,
    FILLED,
    OPEN,
    FillInfo,
    OrderInfo,
    OrderRequest,
)
from orders.brokers.base import Broker, Costs
from strategies.trade_math import BUY, SELL, slipped_price

FEE_PLACES = Decimal("0.000000000001")  # the models' 12 decimal places


def dec(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(FEE_PLACES)


class PaperBroker(Broker):
    live = False

    def __init__(self, costs: Costs | None = None) -> None:
        self.costs = costs or Costs()
        #: This broker's answers by client order id (the Order rows are the lasting record;
        #: this lets one process look up what it placed, as a venue would).
        self.book: dict[str, OrderInfo] = {}

    def _keep(self, info: OrderInfo) -> OrderInfo:
        if info.client_order_id:
            self.book[info.client_order_id] = info
        return info

    # -- the fill model ----------------------------------------------------------------
    def fill_price(self, side: str, last_price: Decimal, limit: Decimal | None) -> Decimal:
        """Last price plus adverse slippage, capped at the limit price."""
        direction = BUY if side == "buy" else SELL
        price = dec(slipped_price(float(last_price), direction, self.costs.slippage_bps))
        if limit is not None:
            price = min(price, limit) if side == "buy" else max(price, limit)
        return price

    def _filled(self, request: OrderRequest, price: Decimal, rate: float, ts_ms: int,
                *, maker: bool, exchange_order_id: str = "") -> OrderInfo:
        quantity = request.quantity
        fee = (quantity * price * Decimal(repr(rate))).quantize(FEE_PLACES)
        exchange_order_id = exchange_order_id or f"paper-{request.client_order_id}"
        fill = FillInfo(
            trade_id=f"{exchange_order_id}-1", price=price, quantity=quantity, fee=fee,
            fee_asset="", ts_ms=ts_ms, is_maker=maker,
        )
        return OrderInfo(
            exchange_order_id=exchange_order_id, client_order_id=request.client_order_id,
            symbol=request.symbol, side=request.side, type=request.type, status=FILLED,
            price=request.price, quantity=quantity, filled_quantity=quantity,
            average_price=price, fee=fee, fills=[fill], raw={"paper": True},
            reduce_only=request.reduce_only, created_ms=ts_ms,
        )

    @staticmethod
    def crosses(side: str, limit: Decimal, price: Decimal) -> bool:
        return price <= limit if side == "buy" else price >= limit

    # -- the contract --------------------------------------------------------------------
    def place(self, request: OrderRequest, *, last_price: Decimal, ts_ms: int) -> OrderInfo:
        if request.quantity is None or request.quantity <= 0:
            raise ValueError("paper orders are sized by quantity")
        if request.type == "market" or self.crosses(request.side, request.price, last_price):
            limit = request.price if request.type == "limit" else None
            price = self.fill_price(request.side, last_price, limit)
            return self._keep(
                self._filled(request, price, self.costs.fee_rate, ts_ms, maker=False)
            )
        return self._keep(OrderInfo(
            exchange_order_id=f"paper-{request.client_order_id}",
            client_order_id=request.client_order_id, symbol=request.symbol, side=request.side,
            type=request.type, status=OPEN, price=request.price, quantity=request.quantity,
            filled_quantity=Decimal(0), average_price=None, fee=Decimal(0), fills=[],
            raw={"paper": True}, reduce_only=request.reduce_only, created_ms=ts_ms,
        ))

    def match(self, order: OrderInfo, *, price: Decimal, ts_ms: int) -> OrderInfo | None:
        if order.type != "limit" or order.is_final or order.price is None:
            return None
        if not self.crosses(order.side, order.price, price):
            return None
        request = OrderRequest(
            symbol=order.symbol, side=order.side, type="limit", quantity=order.quantity,
            price=order.price, client_order_id=order.client_order_id or "",
            reduce_only=order.reduce_only,
        )
        return self._keep(self._filled(
            request, order.price, self.costs.maker_fee_rate, ts_ms, maker=True,
            exchange_order_id=order.exchange_order_id,
        ))

    def cancel(self, symbol: str, client_order_id: str, exchange_order_id: str = "") -> OrderInfo:
        known = self.book.get(client_order_id)
        if known is not None and known.is_final:
            return known
        if known is not None:
            return self._keep(dataclasses.replace(known, status=CANCELLED))
        # Placed by another process: the Order row is the record; cancelling is a state change.
        return OrderInfo(
            exchange_order_id=exchange_order_id or f"paper-{client_order_id}",
            client_order_id=client_order_id, symbol=symbol, side="buy", type="limit",
            status=CANCELLED, price=None, quantity=None, filled_quantity=Decimal(0),
            average_price=None, fee=Decimal(0), raw={"paper": True},
        )

    def fetch(self, symbol: str, client_order_id: str, exchange_order_id: str = "") -> OrderInfo:
        try:
            return self.book[client_order_id]
        except KeyError:
            raise LookupError(
                f"paper order {client_order_id} was not placed by this process; read its Order row"
            ) from None
