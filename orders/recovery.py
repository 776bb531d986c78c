"""Crash recovery of paper orders.

A paper order is saved (status ``new``, funds reserved) and then handed to the paper broker in
the same process a few milliseconds later. A process that dies in between leaves a ``new``
order that nothing would ever settle, with its funds still reserved. ``settle_stale_paper_orders``
(the minute task and worker start) settles each such order once it is older than a grace period
(``settings.TRADING_PAPER_RECOVERY_GRACE_S``, default 60 s: far longer than a save-then-send
takes, so an order a live process is still sending is not touched):

* an order made from a **signal** is given to the paper broker exactly as evaluation would
  have given it: at the signal's price and time (its bar's close), with the same slippage and
  fee, so the fill equals the one the crashed process would have stored. A market order
  fills there; a limit order fills if that price crosses it, else it rests and fills later
  like any resting paper limit.
* any other order (manual, exit-guard or kill-switch close) was sent at a price that was not
  recorded (the ticket's or the trigger's last price). Inventing one would make paper trading
  look better or worse than it was, so it is **cancelled** with the reason recorded and its
  funds released. A close cancelled this way leaves its position open: the exit guard checks
  it again on the next price and closes it then, at that price.

Never twice: the order row is locked and must still be ``new``; the fill's trade id is
``paper-<client order id>-1``, unique per order, so a late send by a process that was only slow
adds nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from markets.exchanges.base import OrderRequest
from markets.models import Account, Symbol
from markets.timeframes import timeframe_ms
from orders.brokers import PaperBroker
from orders.brokers.base import default_costs
from orders.models import Order
from orders.push import batched

log = logging.getLogger(__name__)

INTERRUPTED = (
    "interrupted before the paper fill (the process stopped); the price it would have filled "
    "at was not recorded, so it was cancelled and its funds released"
)


@dataclasses.dataclass
class RecoveryReport:
    filled: list[int] = dataclasses.field(default_factory=list)
    resting: list[int] = dataclasses.field(default_factory=list)
    cancelled: list[int] = dataclasses.field(default_factory=list)
    errors: int = 0


def grace_s() -> float:
    return float(getattr(settings, "TRADING_PAPER_RECOVERY_GRACE_S", 60))


@batched
def settle_stale_paper_orders(now=None, grace: float | None = None) -> RecoveryReport:
    """Settle every paper order left ``new`` for longer than ``grace`` seconds (see the module
    docstring). Returns what became of them."""
    from orders import services

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=grace_s() if grace is None else grace)
    report = RecoveryReport()
    stale = list(
        Order.objects.filter(
            account__mode=Account.Mode.PAPER, status=Order.Status.NEW, created_at__lt=cutoff,
            trigger_price__isnull=True,
        ).values_list("pk", flat=True)
    )
    for pk in stale:
        try:
            _settle_one(pk, report, services)
        except Exception:
            report.errors += 1
            log.exception("recovering paper order %s failed", pk)
    if stale:
        log.warning("paper recovery: filled %s, resting %s, cancelled %s (orders %s)",
                    len(report.filled), len(report.resting), len(report.cancelled), stale)
    return report


def _settle_one(pk: int, report: RecoveryReport, services) -> None:
    account_id = Order.objects.filter(pk=pk).values_list("account_id", flat=True).first()
    with transaction.atomic():
        # The account row first, then the order: the order every service locks them in.
        Account.objects.select_for_update(of=("self",)).get(pk=account_id)
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("account", "symbol__exchange", "signal")
            .filter(pk=pk, status=Order.Status.NEW).first()
        )
        if order is None:  # settled meanwhile
            return
        if order.signal is None:
            services.cancel_order(order, INTERRUPTED)  # paper: releases the reserved funds
            report.cancelled.append(pk)
            return
        signal = order.signal
        price = signal.price
        # Evaluation acts on a signal at its bar's close, at the close's price.
        ts_ms = int(signal.bar_time.timestamp() * 1000) + timeframe_ms(signal.timeframe)
        request = OrderRequest(
            symbol=order.symbol.code, side=order.side, type=order.type,
            quantity=order.quantity, price=order.price, client_order_id=order.client_order_id,
            reduce_only=order.reduce_only
            and order.symbol.market_type == Symbol.MarketType.PERPETUAL,
        )
        info = PaperBroker(default_costs()).place(request, last_price=price, ts_ms=ts_ms)
        order = services.apply_order_info(order, info, close_reason=order.reason)
    (report.filled if order.status == Order.Status.FILLED else report.resting).append(pk)
