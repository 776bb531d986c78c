"""Funding of paper perpetual positions, as the venue settles it every funding interval
(Binance USDⓈ-M: 00:00, 08:00 and 16:00 UTC).

At a funding time each position open across it pays or receives ``quantity x mark x rate``:
a long pays when the rate is positive (a short receives), and the reverse when it is negative.
The settlements come from the stored mark prices (:class:`markets.models.MarkPrice`): the
``last_funding_*`` the venue moved past, and the current rate once its ``next_funding_time``
has passed without an update (the stream was down). Booked once per position and funding time
(:class:`orders.models.FundingPayment`, unique), so the minute job (``run_trading``) can run
as often as it likes and catches up after a pause of less than one interval (an older
settlement is no longer known). The amount moves the account's quote balance (from the
position's margin when the free balance cannot pay it) and the position's realized PnL; no
order or fill is made. Live accounts are the venue's business.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from markets.models import Account, MarkPrice, Symbol
from orders.models import FundingPayment, Position
from orders.services.common import PLACES
from orders.services.ledger import _liquidation, _move, free_balance

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclasses.dataclass(frozen=True)
class Settlement:
    symbol_id: int
    time: dt.datetime
    rate: Decimal
    mark: Decimal


def settlements(now: dt.datetime | None = None) -> list[Settlement]:
    """The funding settlements the stored mark prices know of, up to ``now``."""
    now = now or timezone.now()
    out = []
    for mark in MarkPrice.objects.filter(symbol__market_type=Symbol.MarketType.PERPETUAL):
        if (mark.last_funding_time is not None and mark.last_funding_rate is not None
                and mark.last_funding_time <= now):
            out.append(Settlement(mark.symbol_id, mark.last_funding_time,
                                  mark.last_funding_rate,
                                  mark.last_funding_price or mark.price))
        if (mark.next_funding_time is not None and mark.funding_rate is not None
                and mark.next_funding_time <= now):
            out.append(Settlement(mark.symbol_id, mark.next_funding_time, mark.funding_rate,
                                  mark.price))
    return out


def funding_amount(position: Position, rate: Decimal, mark: Decimal) -> Decimal:
    """What ``position`` receives (+) or pays (-): longs pay a positive rate."""
    side = 1 if position.side == Position.PositionSide.LONG else -1
    return (-side * position.quantity * mark * rate).quantize(PLACES)


def apply_funding(now: dt.datetime | None = None) -> int:
    """Book every due settlement on the paper perpetual positions open across it; returns the
    payments made."""
    booked = 0
    for settlement in settlements(now):
        due = (Position.objects.filter(
            symbol_id=settlement.symbol_id, closed_at__isnull=True,
            opened_at__lte=settlement.time, account__mode=Account.Mode.PAPER)
            .exclude(funding_payments__funding_time=settlement.time)
            .values_list("pk", flat=True))
        for pk in list(due):
            try:
                booked += _book(pk, settlement)
            except Exception:
                log.exception("funding of position %s at %s failed", pk, settlement.time)
    return booked


def _book(position_id: int, settlement: Settlement) -> int:
    with transaction.atomic():
        position = Position.objects.select_related("symbol", "account").get(pk=position_id)
        account = Account.objects.select_for_update().get(pk=position.account_id)
        position = Position.objects.select_for_update().select_related("symbol").get(
            pk=position_id)
        if position.closed_at is not None or position.quantity <= 0:
            return 0
        if FundingPayment.objects.filter(position=position,
                                         funding_time=settlement.time).exists():
            return 0
        amount = funding_amount(position, settlement.rate, settlement.mark)
        FundingPayment.objects.create(
            position=position, funding_time=settlement.time, rate=settlement.rate,
            mark_price=settlement.mark, quantity=position.quantity, amount=amount)
        quote = position.symbol.quote
        from_free = amount
        if amount < 0:
            from_free = -min(-amount, free_balance(account, quote))
            short = -amount + from_free  # what the free balance could not pay
            if short > 0:
                position.margin = max(ZERO, position.margin - short)
                position.liquidation_price = _liquidation(
                    1 if position.side == Position.PositionSide.LONG else -1,
                    position.quantity, position.entry_price, position.margin,
                    position.leverage)
        if from_free:
            _move(account, quote, from_free)
        position.realized_pnl += amount
        position.save()
    log.info("funding %s on position %s (%s at %s, mark %s)", amount, position_id,
             settlement.rate, settlement.time, settlement.mark)
    return 1
