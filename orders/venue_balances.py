"""A live account's balances as its venue states them, and when the venue last confirmed them.

Two ways in, both ending in :func:`store`:

- the user-data stream (``orders.userstream``): Binance spot ``outboundAccountPosition``,
  Binance futures ``ACCOUNT_UPDATE`` (its ``B`` rows), Upbit/Bithumb ``myAsset``. Such an event
  lists only the assets that changed (``full=False``);
- a REST fetch of every balance (``broker.balances()``): reconciliation each minute
  (:func:`refresh_live_balances`), a stream's (re)connection, and every live signal's execution.
  A full fetch is the whole state (``full=True``): an asset stored here that the venue no longer
  lists (Binance spot omits zero balances) is set to 0.

Either way ``Account.venue_confirmed_at`` is set to now: the dashboard and ``/api/balances``
show how long ago the venue last confirmed the account.

Futures wallet rows on the stream carry the wallet balance (``wb``) only, not what is available:
the total is set to it, the part held as margin keeps its last fetched value (at most the total),
and the next full fetch (``availableBalance``) restates both.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from markets.exchanges.errors import ExchangeError
from markets.models import Account, Balance
from orders.brokers import Broker, BrokerUnavailable

log = logging.getLogger(__name__)
ZERO = Decimal("0")


def _checked(account: Account, item) -> tuple[Decimal, Decimal]:
    free, locked = Decimal(item.free), Decimal(item.locked)
    if free < 0 or locked < 0:
        raise ValueError(
            f"{account.label}: the venue reported a negative {item.asset} balance "
            f"(free {free}, locked {locked}); not stored"
        )
    return free, locked


def store(account: Account, balances, *, full: bool, wallet_totals: bool = False) -> int:
    """Store ``balances`` (``markets.exchanges.base.Balance`` items) as ``account``'s and mark it
    confirmed by the venue now. ``full``: the list is every balance (assets not in it are set to
    0). ``wallet_totals``: each item's ``free`` is a wallet total whose held part the event does
    not say (futures ``ACCOUNT_UPDATE``). Returns the number of rows written."""
    now = timezone.now()
    written = 0
    with transaction.atomic():
        # The UPDATE locks the account's row first, then its balances: the order execution
        # locks them in, so a stream event and an execution never deadlock.
        Account.objects.filter(pk=account.pk).update(venue_confirmed_at=now)
        rows = {b.asset: b for b in Balance.objects.select_for_update().filter(account=account)}
        seen = set()
        for item in balances:
            free, locked = _checked(account, item)
            seen.add(item.asset)
            row = rows.get(item.asset)
            if wallet_totals:
                held = min(row.locked, free) if row is not None else ZERO
                free, locked = free - held, held
            if row is None:
                Balance.objects.create(account=account, asset=item.asset, free=free,
                                       locked=locked)
            elif (row.free, row.locked) != (free, locked):
                row.free, row.locked = free, locked
                row.save(update_fields=["free", "locked", "updated_at"])
            else:
                continue
            written += 1
        if full:
            gone = [r.pk for asset, r in rows.items()
                    if asset not in seen and (r.free or r.locked)]
            if gone:
                Balance.objects.filter(pk__in=gone).update(free=ZERO, locked=ZERO, updated_at=now)
                written += len(gone)
    account.venue_confirmed_at = now
    return written


def age_text(confirmed_at, now) -> str:
    """How long ago the venue confirmed an account, for people: "3 s ago", "4 min ago",
    "2 h ago", "5 d ago"; "never" when it has not."""
    if confirmed_at is None:
        return "never"
    seconds = max(int((now - confirmed_at).total_seconds()), 0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def fetch(account: Account, broker: Broker) -> int:
    """Fetch every balance of ``account`` from its venue and store them (full state)."""
    return store(account, broker.balances(), full=True)


def refreshable_accounts(account_ids=None) -> list[Account]:
    """Live accounts whose stored keys are readable (the others cannot be asked anything)."""
    accounts = Account.objects.filter(mode=Account.Mode.LIVE).select_related("exchange")
    if account_ids is not None:
        accounts = accounts.filter(pk__in=list(account_ids))
    return [a for a in accounts if a.credentials_state == Account.CREDENTIALS_STORED]


def refresh_live_balances(account_ids=None, broker_factory=None) -> int:
    """Reconciliation's safety net for the streams: fetch the balances of every live account
    with readable keys (or of ``account_ids``) and store them. An account whose venue cannot be
    reached, or live trading being off on this server, is logged and skipped. Returns how many
    accounts the venue confirmed."""
    from orders.brokers import broker_for

    broker_factory = broker_factory or broker_for
    confirmed = 0
    for account in refreshable_accounts(account_ids):
        broker = None
        try:
            broker = broker_factory(account)
            fetch(account, broker)
        except (BrokerUnavailable, ExchangeError, ValueError) as exc:
            log.warning("balances of %s not refreshed: %s", account, exc)
            continue
        finally:
            if broker is not None and broker_factory is broker_for:
                broker.close()
        confirmed += 1
    return confirmed
