"""Equity snapshots: the five-minute ``EquitySnapshot`` rows and the trading day's start
equity that the daily limits compare with."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from markets import wire
from markets.models import Account
from orders import risk
from orders.models import EquitySnapshot
from orders.push import batched, push_later
from orders.services.common import ms_to_dt
from orders.services.ledger import free_balance

log = logging.getLogger(__name__)


def day_start_equity(account: Account, at_ms: int, equity: Decimal) -> Decimal:
    """The equity the trading day (``settings.TIME_ZONE``) started with: the day's first
    EquitySnapshot (beat writes one every 5 minutes), or, when none exists yet, one written
    now from ``equity`` (the day's reference is then the equity when trading first looked)."""
    start, end = risk.day_bounds_ms(at_ms, settings.TIME_ZONE)
    first = (
        EquitySnapshot.objects.filter(
            account=account, ts__gte=ms_to_dt(start), ts__lt=ms_to_dt(end)
        )
        .order_by("ts")
        .first()
    )
    if first is not None:
        return first.equity
    snapshot, _ = EquitySnapshot.objects.get_or_create(
        account=account,
        ts=ms_to_dt(at_ms).replace(microsecond=0),
        defaults={"equity": equity, "cash": free_balance(account, account.quote_asset)},
    )
    return snapshot.equity




@batched
def snapshot_equity(now=None) -> int:
    """Store one EquitySnapshot per account at ``now`` (UTC, truncated to the second) and tell
    its owner (``equity.updated``: the dashboard's curve and returns). Idempotent for a given
    ``now``. Returns the number of snapshots written."""
    from orders.equity import value_account

    now = (now or timezone.now()).replace(microsecond=0)
    written = 0
    for account in Account.objects.select_related("exchange"):
        valuation = value_account(account)
        if valuation.unpriced_assets:
            log.warning(
                "equity of %s leaves out unpriced %s", account, ", ".join(valuation.unpriced_assets)
            )
        snapshot, created = EquitySnapshot.objects.get_or_create(
            account=account, ts=now, defaults={"equity": valuation.equity, "cash": valuation.cash}
        )
        written += int(created)
        if created:
            push_later(account.owner_id, wire.EQUITY_UPDATED, {
                "account": account.pk, "ts": int(now.timestamp() * 1000),
                "equity": format(snapshot.equity.normalize(), "f"),
            })
    return written
