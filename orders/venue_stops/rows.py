"""Venue stop rows (``orders.venue_stops``): which stops a position should have at the venue,
its stops that may still be working, and the row updates a stop goes through (final state,
the venue's view). Placing, settling, releasing and reconciling them is ``orders.venue_stops``;
this module imports nothing of it."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from markets import wire
from markets.exchanges.base import (
    CANCELLED,
    EXPIRED,
    REJECTED,
    STOP_LOSS,
    STOP_OPEN,
    TAKE_PROFIT,
    StopInfo,
)
from markets.models import Account, Symbol
from orders.models import Order, Position, Side
from orders.push import push_later
from orders.services.common import round_price
from orders.services.payloads import order_payload

log = logging.getLogger(__name__)

KINDS = (STOP_LOSS, TAKE_PROFIT)
NEVER_ARRIVED = "the venue has no such stop: it never arrived"
GONE = "the venue no longer has this stop"
#: Reasons of stops the venue lost: reconciliation places them again.
LOST = (NEVER_ARRIVED, GONE)
_FINAL = {CANCELLED: Order.Status.CANCELLED, EXPIRED: Order.Status.EXPIRED,
          REJECTED: Order.Status.REJECTED}


def open_stops(position_id: int):
    """The position's venue stops that may still be working at the venue."""
    return Order.objects.filter(
        position_id=position_id, trigger_price__isnull=False, status__in=Order.OPEN_STATUSES
    ).select_related("account__exchange", "symbol__exchange", "position")


def _closing_side(position: Position) -> str:
    return Side.SELL if position.side == Position.PositionSide.LONG else Side.BUY


def wanted_levels(position: Position) -> dict[str, Decimal]:
    """The triggers a position should have at the venue: its stored stop and target rounded
    to the tick toward the entry (stop of a long and target of a short up, the others down)."""
    long = position.side == Position.PositionSide.LONG
    out = {}
    if position.stop_price:
        out[STOP_LOSS] = round_price(position.symbol, position.stop_price,
                                     "sell" if long else "buy")
    if position.target_price:
        out[TAKE_PROFIT] = round_price(position.symbol, position.target_price,
                                       "buy" if long else "sell")
    return {k: v for k, v in out.items() if v > 0}


def _wants_venue_stops(account: Account, symbol: Symbol) -> bool:
    return account.mode == Account.Mode.LIVE and symbol.market_type == Symbol.MarketType.PERPETUAL


def needs_protection(order: Order, account: Account) -> bool:
    """Cheap, in-memory: whether a fill of ``order`` may call for venue stops (a live
    perpetual entry or add). ``orders.services.dispatch.apply_order_info`` asks before
    ``after_fill``; the ledger never imports this module (no import cycle)."""
    return (
        not order.reduce_only and order.trigger_price is None
        and _wants_venue_stops(account, order.symbol)
    )


# ------------------------------------------------------------------------ row updates


def _push(order: Order) -> None:
    push_later(order.account.owner_id, wire.ORDER_UPDATED, order_payload(order))


def _finish(order: Order, status: str, reason: str) -> Order:
    """Move a venue stop that is still open here to a final state, with the reason."""
    with transaction.atomic():
        row = (
            Order.objects.select_for_update(of=("self",))
            .select_related("account", "symbol__exchange")
            .get(pk=order.pk)
        )
        if row.status in Order.OPEN_STATUSES:
            row.status = status
            row.reject_reason = reason[:2000]
            row.save(update_fields=["status", "reject_reason", "updated_at"])
            _push(row)
    return row


def _record(order: Order, stop: StopInfo) -> Order:
    """Keep the venue's view of the stop on the row (``raw["stop"]``); an open stop is
    ``open`` here."""
    with transaction.atomic():
        row = (
            Order.objects.select_for_update(of=("self",))
            .select_related("account", "symbol__exchange")
            .get(pk=order.pk)
        )
        raw = dict(row.raw or {})
        raw["stop"] = {"id": stop.stop_id, "status": stop.status, "order_id": stop.order_id}
        row.raw = raw
        fields = ["raw", "updated_at"]
        if stop.status == STOP_OPEN and row.status in (Order.Status.NEW, Order.Status.SUBMITTED):
            row.status = Order.Status.OPEN
            row.reject_reason = ""
            fields += ["status", "reject_reason"]
        row.save(update_fields=fields)
        if "status" in fields:
            _push(row)
    return row
