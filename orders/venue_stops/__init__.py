"""Venue stops: a live futures position's stop-loss and take-profit left with the venue as
conditional reduce-only market orders, where the venue holds them
(``Capabilities.supports_venue_stops``: Binance USDⓈ-M futures). Spot venues, Upbit and Bithumb
hold none: the exit guard (``orders.exits``) stays their only protection, and it stays the
only trailing stop everywhere (a venue trailing stop trails the venue's own best price, not
the one the backtester and the guard use).

Each venue stop is an ``Order`` row (``trigger_price`` set, ``reduce_only``, ``reason``
``stop_loss`` or ``take_profit``, ``position`` = the position it protects), saved (status
``submitted``) before it is sent. A stop is reduce-only for its position's own quantity (never
``closePosition``, which would close every config's share of the venue's net position on the
symbol); its fill is applied to that position (``Order.position``). Its life:

* **placed** after an entry or add fills (``after_fill``, asked for by
  ``orders.services.dispatch.apply_order_info`` once the ledger applied the fill), at the
  position's stored levels rounded to the tick *toward the entry*: the venue triggers at or
  before the exit guard's own level, so the venue acts first and the guard, watching the same
  trades, finds the stop already triggered. An add changes the levels and quantity: new stops
  are placed, then the old ones cancelled.
* **triggered by the venue**: reconciliation (``reconcile_stops``: the minute task and worker
  start) reads the stop, then the market order it placed (``order_id``) with its fills, and
  applies them to the same Order row through ``orders.services.ledger``, which closes the
  position with the venue's fill; the other stop of the position is then cancelled.
* **our own close** (signal exit, exit guard, kill switch with ``--close-positions``): before
  anything is sent, ``release`` cancels the position's stops at the venue. Only when every one
  is confirmed cancelled is our close sent. A cancel the venue refuses because the stop already
  triggered means the venue closed (or is closing) the position: its fill is applied as above
  and our close is not sent. So a position is closed once, whichever side is first: the venue
  holds no working stop while our close is in flight, and our close is never sent while a
  stop may still fill. A venue we cannot reach leaves the stops working and sends nothing.

The kill switch without ``--close-positions`` leaves venue stops working: they only ever
reduce a position.

The stop rows themselves (wanted levels, working stops, row updates) are ``orders.venue_stops``.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

from django.db import transaction

from markets.exchanges.base import (
    STOP_FINISHED,
    STOP_TRIGGERED,
    StopInfo,
    StopRequest,
)
from markets.exchanges.errors import ExchangeError, OrderNotFound, OrderRejected
from markets.models import Account, Symbol
from orders.brokers import Broker, BrokerUnavailable, broker_for
from orders.models import Order, Position
from orders.push import batched
from orders.services import ledger
from orders.services.common import _open_position, new_client_order_id
from orders.venue_stops.rows import (
    _FINAL,
    GONE,
    LOST,
    NEVER_ARRIVED,
    _closing_side,
    _finish,
    _push,
    _record,
    _wants_venue_stops,
    needs_protection,
    open_stops,
    wanted_levels,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ settle


@batched
def settle(order: Order, stop: StopInfo, broker: Broker) -> Order:
    """Apply the venue's state of a stop to its row. A triggered stop's market order is read
    (with its fills) and applied like any order, closing the position with the venue's fill;
    the position's other stops are then cancelled. A stop the venue cancelled, expired or
    rejected is final here too."""
    order = _record(order, stop)
    if stop.status in (STOP_TRIGGERED, STOP_FINISHED) and stop.order_id:
        info = broker.fetch(order.symbol.code, "", stop.order_id)
        info = dataclasses.replace(info, client_order_id=order.client_order_id)
        position = Position.objects.filter(pk=order.position_id).first()
        was_open = position is not None and position.closed_at is None
        if info.filled_quantity and not was_open and not order.fills.exists():
            # The venue reduced a position this database already had closed: the two
            # disagree and no repair is unambiguous.
            ledger.halt_account(order.account, (
                f"venue stop {order.client_order_id} on {order.symbol} filled after the "
                "position was closed here; compare the venue's position with the dashboard"
            ))
        order = ledger.apply_order_info(order, info, close_reason=order.reason)
        if order.status == Order.Status.FILLED or order.filled_quantity > 0:
            log.info("venue %s of position %s filled at %s", order.reason, order.position_id,
                     order.average_price)
            cancel_others(order, broker, f"its {order.reason.replace('_', ' ')} filled")
        elif info.is_final:
            log.warning("venue %s %s triggered but its order %s ended %s unfilled",
                        order.reason, order.client_order_id, stop.order_id, info.status)
        return order
    if stop.status in _FINAL:
        return _finish(order, _FINAL[stop.status], f"the venue reports the stop {stop.status}")
    if stop.status == STOP_FINISHED:  # finished without an order: nothing was executed
        return _finish(order, Order.Status.EXPIRED, "the venue finished the stop unexecuted")
    return order


def cancel_others(order: Order, broker: Broker, reason: str) -> None:
    """Cancel the other working stops of ``order``'s position (one stop filled)."""
    for other in open_stops(order.position_id).exclude(pk=order.pk):
        cancel_or_settle(other, broker, f"cancelled: {reason}")


@batched
def cancel_or_settle(order: Order, broker: Broker, reason: str) -> bool:
    """Cancel one venue stop. True when it is no longer working and did not execute (safe to
    close the position ourselves); False when it executed (its fill is applied) or its state
    is unknown (the venue could not be asked)."""
    symbol = order.symbol.code
    try:
        broker.cancel_stop(symbol, order.client_order_id)
    except OrderNotFound:
        # Triggered, already gone, or never arrived: ask what became of it.
        try:
            stop = broker.fetch_stop(symbol, order.client_order_id)
        except OrderNotFound:
            never = order.status in (Order.Status.NEW, Order.Status.SUBMITTED)
            _finish(order, Order.Status.REJECTED if never else Order.Status.CANCELLED,
                    NEVER_ARRIVED if never else GONE)
            return True
        except (ExchangeError, BrokerUnavailable) as exc:
            log.warning("venue stop %s: cancel refused and lookup failed: %s",
                        order.client_order_id, exc)
            return False
        order = settle(order, stop, broker)
        return order.status not in Order.OPEN_STATUSES and order.filled_quantity == 0
    except (ExchangeError, BrokerUnavailable) as exc:
        log.warning("venue stop %s: cancel failed: %s", order.client_order_id, exc)
        return False
    _finish(order, Order.Status.CANCELLED, reason)
    return True


# ------------------------------------------------------------------------ place


def _save_stop(position: Position, kind: str, trigger: Decimal) -> Order:
    """The stop's row, saved ``submitted`` before anything is sent (caller's transaction)."""
    order = Order.objects.create(
        account=position.account, config=position.config, symbol=position.symbol,
        side=_closing_side(position), type=Order.Type.MARKET, quantity=position.quantity,
        reduce_only=True, trigger_price=trigger, position=position,
        client_order_id=new_client_order_id(), reason=kind, status=Order.Status.SUBMITTED,
    )
    _push(order)
    return order


def _send_stop(order: Order, broker: Broker) -> Order:
    request = StopRequest(symbol=order.symbol.code, side=order.side, kind=order.reason,
                          trigger_price=order.trigger_price, quantity=order.quantity,
                          client_id=order.client_order_id)
    try:
        stop = broker.place_stop(request)
    except (OrderRejected, ValueError) as exc:
        log.warning("venue refused the %s of position %s: %s", order.reason, order.position_id,
                    exc)
        return _finish(order, Order.Status.REJECTED, f"the venue refused the stop: {exc}")
    except (ExchangeError, BrokerUnavailable) as exc:
        Order.objects.filter(pk=order.pk).update(
            reject_reason=f"outcome unknown, reconcile with the venue: {exc}"[:2000]
        )
        log.warning("venue %s %s outcome unknown: %s", order.reason, order.client_order_id, exc)
        return Order.objects.get(pk=order.pk)
    return settle(order, stop, broker)


@batched
def protect(position: Position, broker: Broker | None = None) -> list[Order]:
    """Make the venue hold ``position``'s stop-loss and take-profit at its current levels and
    quantity: place what is missing, then cancel what no longer matches (an add changed the
    levels). Returns the position's working stops. Nothing for paper accounts, spot symbols
    or venues that hold no stops.

    What to place is decided and saved with the account and position rows locked, so two
    processes applying the same entry fill (a send and the user stream, say) place one set."""
    with transaction.atomic():
        Account.objects.select_for_update(of=("self",)).get(pk=position.account_id)
        position = (
            Position.objects.select_for_update(of=("self",))
            .select_related("account__exchange", "symbol__exchange", "config")
            .filter(pk=position.pk, closed_at__isnull=True).first()
        )
        if position is None or not _wants_venue_stops(position.account, position.symbol):
            return []
        own = {"config__isnull": True} if position.config_id is None else {
            "config_id": position.config_id}
        if Order.objects.filter(
            account_id=position.account_id, symbol_id=position.symbol_id, reduce_only=True,
            trigger_price__isnull=True, status__in=Order.OPEN_STATUSES, **own,
        ).exists():
            return []  # a close of ours is in flight: it released the stops on purpose
        wanted = wanted_levels(position)
        side = _closing_side(position)
        keep, stale = [], []
        for order in open_stops(position.pk):
            if (wanted.get(order.reason) == order.trigger_price
                    and order.quantity == position.quantity and order.side == side):
                keep.append(order)
                wanted.pop(order.reason)
            else:
                stale.append(order)
        # A stop the venue refused, or that a person cancelled, is not placed again at the
        # same level (one the venue lost is).
        ended = set(
            Order.objects.filter(
                position=position, trigger_price__isnull=False,
                status__in=(Order.Status.REJECTED, Order.Status.CANCELLED),
            ).exclude(reject_reason__in=LOST).values_list("reason", "trigger_price")
        )
        wanted = {k: v for k, v in wanted.items() if (k, v) not in ended}
        if not wanted and not stale:
            return keep
        broker = broker or broker_for(position.account)
        if not broker.venue_stops:
            return []
        saved = [_save_stop(position, kind, trigger) for kind, trigger in wanted.items()]
    placed = [_send_stop(order, broker) for order in saved]
    for order in stale:
        cancel_or_settle(order, broker, "cancelled: replaced by a stop at the new level")
    if Position.objects.filter(pk=position.pk, closed_at__isnull=False).exists():
        # A replaced stop filled meanwhile: the new ones protect nothing.
        release(position, broker)
        return []
    return [o for o in keep + placed if o.status in Order.OPEN_STATUSES]


def after_fill(order_id: int) -> None:
    """Called once an entry or add of a live perpetual account was applied: protect the
    position at the venue. Never raises into the fill path (the exit guard still protects)."""
    try:
        order = Order.objects.select_related("account", "symbol").get(pk=order_id)
        if not needs_protection(order, order.account) or order.filled_quantity <= 0:
            return
        # The position of the order's config (each config owns its positions; its stops are
        # reduce-only for its own quantity, never closePosition for the whole symbol).
        position = _open_position(
            order.account_id, order.symbol_id, config_id=order.config_id, lock=False
        )
        if position is not None:
            protect(position)
    except Exception:
        log.exception("placing venue stops after order %s failed; the exit guard protects "
                      "the position meanwhile", order_id)


# ------------------------------------------------------------------------ our close


@batched
def release(position: Position, broker: Broker | None = None, reason: str = "") -> bool:
    """Before we close ``position`` ourselves: cancel its venue stops. True when none is
    working any more and none executed (send the close); False when one executed (the venue
    closed the position and its fill is applied) or a stop's state is unknown (send nothing;
    the stop still protects)."""
    if broker is not None and not broker.live:
        return True  # paper: no venue holds anything for it (and no query on this path)
    stops = list(open_stops(position.pk))
    if not stops:
        return True
    try:
        broker = broker if broker is not None and broker.venue_stops else broker_for(
            stops[0].account)
    except BrokerUnavailable as exc:
        log.warning("cannot cancel the venue stops of position %s: %s", position.pk, exc)
        return False
    why = f"cancelled: closing the position ({reason})" if reason else "cancelled"
    released = True
    for order in stops:
        released = cancel_or_settle(order, broker, why) and released
    if Position.objects.filter(pk=position.pk, closed_at__isnull=False).exists():
        return False
    return released and not open_stops(position.pk).exists()


@batched
def cancel_stop_order(order: Order, reason: str, broker: Broker | None = None) -> Order:
    """A person cancels one venue stop (the dashboard or API cancel): at the venue first."""
    broker = broker if broker is not None and broker.venue_stops else broker_for(order.account)
    cancel_or_settle(order, broker, reason)
    return Order.objects.get(pk=order.pk)


# ------------------------------------------------------------------------ reconciliation


@batched
def reconcile_stops(account_ids=None, broker_factory=None) -> int:
    """Compare every working venue stop with the venue and apply what happened there (a
    triggered stop closes its position with the venue's fill and cancels the other stop); a
    stop whose position is closed here is cancelled; an open live perpetual position without
    its stops gets them. Returns the number of stop rows that changed."""
    broker_factory = broker_factory or broker_for
    brokers: dict[int, Broker] = {}

    def broker_of(account) -> Broker:
        if account.pk not in brokers:
            brokers[account.pk] = broker_factory(account)
        return brokers[account.pk]

    stops = Order.objects.filter(
        trigger_price__isnull=False, status__in=Order.OPEN_STATUSES,
        account__mode=Account.Mode.LIVE,
    ).select_related("account__exchange", "symbol__exchange", "position")
    if account_ids is not None:
        stops = stops.filter(account_id__in=list(account_ids))
    stops = list(stops)
    before = {o.pk: (o.status, o.filled_quantity) for o in stops}
    for order in stops:
        order.refresh_from_db(fields=["status"])
        if order.status not in Order.OPEN_STATUSES:  # settled with its sibling
            continue
        try:
            broker = broker_of(order.account)
            position = order.position
            if position is None or position.closed_at is not None:
                cancel_or_settle(order, broker, "cancelled: its position is closed")
            else:
                try:
                    stop = broker.fetch_stop(order.symbol.code, order.client_order_id)
                except OrderNotFound:
                    never = order.status in (Order.Status.NEW, Order.Status.SUBMITTED)
                    _finish(order, Order.Status.REJECTED if never else Order.Status.CANCELLED,
                            NEVER_ARRIVED if never else GONE)
                else:
                    settle(order, stop, broker)
        except (BrokerUnavailable, ExchangeError) as exc:
            log.warning("reconcile venue stop %s: %s", order.client_order_id, exc)
    after = Order.objects.filter(pk__in=list(before)).values_list(
        "pk", "status", "filled_quantity")
    changed = sum(1 for pk, status, filled in after if before[pk] != (status, filled))
    positions = Position.objects.filter(
        closed_at__isnull=True, account__mode=Account.Mode.LIVE,
        symbol__market_type=Symbol.MarketType.PERPETUAL,
    ).select_related("account__exchange", "symbol__exchange")
    if account_ids is not None:
        positions = positions.filter(account_id__in=list(account_ids))
    for position in positions:
        if not wanted_levels(position):
            continue
        try:
            protect(position, broker_of(position.account))
        except (BrokerUnavailable, ExchangeError) as exc:
            log.warning("protecting position %s: %s", position.pk, exc)
    return changed
