"""Settling with the venue: live orders whose outcome is unknown or still open are read back by
client order id and applied; paper limit orders are matched against the last price."""

from __future__ import annotations

import logging
from decimal import Decimal

from markets.exchanges.base import OrderInfo
from markets.exchanges.errors import ExchangeError
from markets.models import Account, Symbol
from orders.brokers import Broker, BrokerUnavailable, broker_for
from orders.models import Order
from orders.push import batched
from orders.services.dispatch import apply_order_info
from orders.services.ledger import _reject_order

log = logging.getLogger(__name__)


@batched
def match_resting_orders(symbol: Symbol, price: Decimal, ts_ms: int) -> int:
    """Fill paper limit orders on ``symbol`` that ``price`` crossed. Returns how many filled."""
    filled = 0
    resting = Order.objects.filter(
        symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT,
        account__mode=Account.Mode.PAPER,
    ).select_related("account", "symbol__exchange")
    for order in resting:
        broker = broker_for(order.account)
        info = broker.match(_order_info(order), price=price, ts_ms=ts_ms)
        if info is not None:
            apply_order_info(order, info)
            filled += 1
    return filled


def _order_info(order: Order) -> OrderInfo:
    return OrderInfo(
        exchange_order_id=order.exchange_order_id, client_order_id=order.client_order_id,
        symbol=order.symbol.code, side=order.side, type=order.type, status=order.status,
        price=order.price, quantity=order.quantity, filled_quantity=order.filled_quantity,
        average_price=order.average_price, fee=order.fee, reduce_only=order.reduce_only,
    )


@batched
def reconcile_live_orders(account_ids=None, broker_factory=None) -> int:
    """Ask the venue about every live order still ``submitted`` (outcome unknown), ``open`` or
    ``partially_filled``, by client order id, and apply the answer (fills, position, status).
    This is how a placement that timed out is settled without ever re-sending it. Returns the
    number of orders whose state changed."""
    from markets.exchanges.errors import OrderNotFound

    broker_factory = broker_factory or broker_for
    orders = Order.objects.filter(
        account__mode=Account.Mode.LIVE,
        status__in=[Order.Status.SUBMITTED, Order.Status.OPEN, Order.Status.PARTIALLY_FILLED],
        trigger_price__isnull=True,  # venue stops: orders.venue_stops.reconcile_stops
    ).select_related("account__exchange", "symbol__exchange")
    if account_ids is not None:
        orders = orders.filter(account_id__in=list(account_ids))
    changed = 0
    brokers: dict[int, Broker] = {}
    for order in orders:
        try:
            broker = brokers.get(order.account_id) or broker_factory(order.account)
            brokers[order.account_id] = broker
            info = broker.fetch(order.symbol.code, order.client_order_id, order.exchange_order_id)
        except OrderNotFound:
            if order.status == Order.Status.SUBMITTED:
                _reject_order(order, "the venue has no such order: it never arrived")
                changed += 1
            continue
        except (BrokerUnavailable, ExchangeError) as exc:
            log.warning("reconcile %s: %s", order.client_order_id, exc)
            continue
        before = (order.status, order.filled_quantity)
        order = apply_order_info(order, info)
        changed += int((order.status, order.filled_quantity) != before)
    return changed


# ------------------------------------------------------------------------ manual orders
