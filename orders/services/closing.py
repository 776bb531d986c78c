"""Closing a whole position (the exit guard, signal exits and reversals, the kill switch),
after its venue stops are released (``orders.venue_stops.release``), and the trailing stop's
best price."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from markets.exchanges.base import OrderInfo, OrderRequest
from markets.exchanges.errors import (
    ExchangeError,
    InsufficientFunds,
    OrderRejected,
)
from markets.models import Account, Symbol
from orders import venue_stops
from orders.brokers import Broker, broker_for
from orders.models import Order, Position, Side
from orders.push import batched
from orders.services.common import (
    ZERO,
    _bucket,
    dec,
    limit_price,
    now_ms,
)
from orders.services.dispatch import apply_order_info
from orders.services.ledger import (
    _new_order,
    _reject_order,
    log_order,
)
from strategies.models import Signal


@batched
def close_position(
    position: Position,
    reason: str,
    *,
    last_price: Decimal,
    ts_ms: int | None = None,
    broker: Broker | None = None,
    signal: Signal | None = None,
    use_limit: bool = False,
) -> Order | None:
    """Close the whole ``position`` through the broker at ``last_price`` (the exit guard's
    trigger price or a signal's close). A reduce-only order (market, or a limit offset by
    the aggressiveness for signal exits). Protective closes run on halted accounts too.
    A paper liquidation loses the margin: recorded as a fill at the liquidation price, no fee.
    Returns the order, or None when the position is already closed or has a close in flight.

    Venue stops of the position are cancelled first (``orders.venue_stops.release``); when one
    already executed, the venue closed the position (its fill is applied) and nothing is sent.
    """
    ts_ms = now_ms() if ts_ms is None else ts_ms
    if not venue_stops.release(position, broker, reason):
        return None
    with transaction.atomic():
        account = Account.objects.select_for_update(of=("self",)).get(pk=position.account_id)
        position = (
            Position.objects.select_for_update(of=("self",))
            .select_related("symbol__exchange", "config")
            .filter(pk=position.pk, closed_at__isnull=True)
            .first()
        )
        if position is None or position.quantity <= 0:
            return None
        if Order.objects.filter(
            account=account, symbol=position.symbol, reduce_only=True,
            status__in=Order.OPEN_STATUSES, **_bucket(position.config_id),
        ).exists():
            return None  # this position's own close is in flight
        broker = broker or broker_for(account)
        side = Side.SELL if position.side == Position.PositionSide.LONG else Side.BUY
        price = limit_price(position.symbol, side, last_price, broker.costs) if use_limit else None
        order = _new_order(
            account, position.symbol, side=side, quantity=position.quantity, price=price,
            reason=reason, config=position.config, signal=signal, reduce_only=True,
        )
    log_order(order)
    if reason == "liquidation" and not broker.live:
        from markets.exchanges.base import FILLED, FillInfo

        fill = FillInfo(
            trade_id=f"liquidation-{order.client_order_id}", price=last_price,
            quantity=order.quantity, fee=ZERO, fee_asset=None, ts_ms=ts_ms,
        )
        info = OrderInfo(
            exchange_order_id=f"paper-{order.client_order_id}",
            client_order_id=order.client_order_id, symbol=position.symbol.code, side=side,
            type="market", status=FILLED, price=None, quantity=order.quantity,
            filled_quantity=order.quantity, average_price=last_price, fee=ZERO, fills=[fill],
            raw={"paper": True, "liquidation": True}, reduce_only=True,
        )
        return apply_order_info(order, info, close_reason=reason)
    if broker.live:
        Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.SUBMITTED
        )
    try:
        info = broker.place(
            OrderRequest(
                symbol=position.symbol.code, side=side, type=order.type,
                quantity=order.quantity, price=order.price,
                client_order_id=order.client_order_id,
                reduce_only=position.symbol.market_type == Symbol.MarketType.PERPETUAL,
            ),
            last_price=last_price, ts_ms=ts_ms,
        )
    except (OrderRejected, InsufficientFunds, ValueError) as exc:
        _reject_order(order, f"close rejected by {position.symbol.exchange}: {exc}")
        return Order.objects.get(pk=order.pk)
    except ExchangeError as exc:
        Order.objects.filter(pk=order.pk).update(
            reject_reason=f"outcome unknown, reconcile with the venue: {exc}"[:2000]
        )
        return Order.objects.get(pk=order.pk)
    return apply_order_info(order, info, close_reason=reason)


def track_best_price(position: Position, price: float) -> None:
    """Move the trailing stop's best price (highest for a long, lowest for a short)."""
    best = position.best_price
    value = dec(price)
    if best is not None and (
        (position.side == Position.PositionSide.LONG and value <= best)
        or (position.side == Position.PositionSide.SHORT and value >= best)
    ):
        return
    Position.objects.filter(pk=position.pk, closed_at__isnull=True).update(best_price=value)
    position.best_price = value
