"""Sending: a saved order goes through its broker and the answer is applied by the ledger;
an entry or add of a live perpetual account then asks ``orders.venue_stops`` for venue stops once
the fill is committed. Every service that applies a broker's answer calls
:func:`apply_order_info` here, not the ledger's, so the venue stops are never forgotten."""

from __future__ import annotations

import functools
import logging
from decimal import Decimal

from django.db import transaction

from markets.exchanges.base import OrderInfo, OrderRequest
from markets.exchanges.errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    OrderRejected,
    OrderStatusUnknown,
    TemporaryExchangeError,
)
from markets.models import Symbol
from orders import venue_stops
from orders.brokers import Broker
from orders.models import Order
from orders.push import batched
from orders.services import ledger
from orders.services.ledger import (
    _reject_order,
    halt_account,
)

log = logging.getLogger(__name__)


@batched
def send_order(order: Order, broker: Broker, *, last_price: Decimal, ts_ms: int) -> Order:
    """Send a saved ``new`` order through ``broker`` and apply the answer. A venue rejection
    becomes status ``rejected``; an unknown outcome stays ``submitted`` (never re-sent: the
    adapter already looked it up by client order id); bad keys halt the account. A live order
    is marked ``submitted`` before it leaves (a paper order never leaves the process), and
    only if this call moved it out of ``new``: one cancelled meanwhile (the kill switch) or
    already sent is not sent again."""
    if broker.live:
        claimed = Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.SUBMITTED
        )
        if not claimed:
            log.warning("order %s is no longer new; not sent", order.client_order_id)
            return Order.objects.get(pk=order.pk)
    symbol = order.symbol
    # A live buy by quote amount leaves the quantity to the venue; paper bought it already.
    by_quote = order.quote_amount is not None and broker.live
    request = OrderRequest(
        symbol=symbol.code,
        side=order.side,
        type=order.type,
        quantity=None if by_quote else order.quantity,
        quote_amount=order.quote_amount if by_quote else None,
        price=order.price,
        client_order_id=order.client_order_id,
        reduce_only=order.reduce_only and symbol.market_type == Symbol.MarketType.PERPETUAL,
    )
    ledger.log_order(order)
    try:
        perpetual = symbol.market_type == Symbol.MarketType.PERPETUAL
        if broker.live and perpetual and not order.reduce_only:
            leverage = order.config.leverage if order.config_id else 1
            broker.prepare_futures(symbol.code, leverage)
        info = broker.place(request, last_price=last_price, ts_ms=ts_ms)
    except (OrderRejected, InsufficientFunds, ValueError) as exc:
        _reject_order(order, f"rejected by {symbol.exchange}: {exc}")
        return Order.objects.get(pk=order.pk)
    except AuthenticationError as exc:
        _reject_order(order, f"the venue refused the API key: {exc}")
        halt_account(order.account, f"API key refused by {symbol.exchange}: {exc}")
        return Order.objects.get(pk=order.pk)
    except (OrderStatusUnknown, TemporaryExchangeError, ExchangeError) as exc:
        Order.objects.filter(pk=order.pk).update(
            reject_reason=f"outcome unknown, reconcile with the venue: {exc}"[:2000]
        )
        log.warning("order %s outcome unknown: %s", order.client_order_id, exc)
        return Order.objects.get(pk=order.pk)
    return apply_order_info(order, info)


@batched
def apply_order_info(order: Order, info: OrderInfo, *, close_reason: str = "") -> Order:
    """Apply a broker's answer to ``order`` through the ledger (``ledger.apply_order_info``),
    then, when the fill was an entry or add that the venue should protect, ask
    ``orders.venue_stops`` for venue stops once the fill is committed (nothing is sent inside a
    transaction). The ledger never asks for stops itself: it only records the fill."""
    order = ledger.apply_order_info(order, info, close_reason=close_reason)
    if venue_stops.needs_protection(order, order.account):
        # In memory: paper and spot orders pay nothing here.
        transaction.on_commit(functools.partial(venue_stops.after_fill, order.pk))
    return order
