"""Equity snapshots: the periodic ``EquitySnapshot`` rows, the trading day's start equity that
the daily limits compare with, and (with each snapshot) whether a config's daily target or max
loss was reached, for the ``daily_limit_hit`` alert rule."""

from __future__ import annotations

import logging
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch, Q
from django.utils import timezone

from markets import wire
from markets.models import Account
from orders import risk
from orders.models import EquitySnapshot
from orders.push import batched, push_later
from orders.services.common import ms_to_dt
from orders.services.ledger import free_balance
from strategies.models import StrategyConfig

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
    with_limits = StrategyConfig.objects.filter(is_active=True).filter(
        Q(daily_target_pct__isnull=False) | Q(daily_max_loss_pct__isnull=False)
    ).only("id", "name", "account_id", "daily_target_pct", "daily_max_loss_pct")
    accounts = Account.objects.select_related("exchange").prefetch_related(
        Prefetch("strategy_configs", queryset=with_limits.order_by("name"), to_attr="limited")
    )
    for account in accounts:
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
            payload = {
                "account": account.pk, "ts": int(now.timestamp() * 1000),
                "equity": format(snapshot.equity.normalize(), "f"),
            }
            hit = daily_limit_hit(account, snapshot.equity, now, account.limited)
            if hit is not None:
                payload |= {"label": account.label, "daily_limit": hit}
            push_later(account.owner_id, wire.EQUITY_UPDATED, payload)
    return written


def daily_limit_hit(account: Account, equity: Decimal, now, configs) -> dict | None:
    """Whether ``equity`` reached the daily target or max loss of any of ``configs`` (the
    account's active configs with a daily limit) today: ``{"which": "target" | "max_loss",
    "day": the trading day, "reason": the first such config's gate reason, "configs": the
    names of those that stop entering}`` (what the ``daily_limit_hit`` alert rule tells), or
    None. The max loss is checked first."""
    if not configs:
        return None
    at_ms = int(now.timestamp() * 1000)
    start = day_start_equity(account, at_ms, equity)
    hits: dict[str, list[tuple[str, str]]] = {}
    for config in configs:
        hit = risk.daily_limit_hit(start, equity, config.daily_target_pct,
                                   config.daily_max_loss_pct)
        if hit is not None:
            hits.setdefault(hit[0], []).append((config.name, hit[1]))
    for which in ("max_loss", "target"):
        if which in hits:
            day_start_ms, _ = risk.day_bounds_ms(at_ms, settings.TIME_ZONE)
            day = ms_to_dt(day_start_ms).astimezone(ZoneInfo(settings.TIME_ZONE)).date()
            return {"which": which, "day": day.isoformat(), "reason": hits[which][0][1],
                    "configs": [name for name, _ in hits[which]]}
    return None
