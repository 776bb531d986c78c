"""The only writer of orders, fills and positions (and paper balances).

Everything that changes trading state goes through here, in a transaction, so paper and live
share one persistence path and every change is traceable.
"""

from __future__ import annotations

import dataclasses
import logging

from django.db import transaction
from django.utils import timezone

from markets.models import Account
from orders.models import Order
from strategies.models import StrategyConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class StopResult:
    configs_deactivated: int = 0
    accounts_halted: int = 0
    orders_cancelled: int = 0
    live_orders_open: int = 0

    def summary(self) -> str:
        text = (
            f"deactivated {self.configs_deactivated} config(s), halted "
            f"{self.accounts_halted} account(s), cancelled {self.orders_cancelled} open order(s)"
        )
        if self.live_orders_open:
            text += (
                f"; {self.live_orders_open} live order(s) are still open at the venue and must be "
                "cancelled there"
            )
        return text


def stop_trading(
    *,
    user=None,
    config_ids: list[int] | None = None,
    reason: str = "kill switch",
) -> StopResult:
    """The kill switch: deactivate configs, halt their accounts, cancel their open orders.

    ``user`` limits everything to that user's objects (None = every user, for the superuser's
    command). ``config_ids`` selects configs; without it, all of the user's configs and accounts
    stop. Halted accounts place no new orders until a person resumes them in the admin.
    """
    now = timezone.now()
    configs = StrategyConfig.objects.all()
    accounts = Account.objects.all()
    if user is not None:
        configs = configs.filter(owner=user)
        accounts = accounts.filter(owner=user)
    if config_ids:
        configs = configs.filter(pk__in=config_ids)
        accounts = accounts.filter(pk__in=configs.values("account_id"))
    result = StopResult()
    with transaction.atomic():
        account_ids = list(accounts.select_for_update().values_list("pk", flat=True))
        result.configs_deactivated = configs.filter(is_active=True).update(is_active=False)
        result.accounts_halted = Account.objects.filter(pk__in=account_ids, halted=False).update(
            halted=True, halted_at=now, halted_reason=reason[:255]
        )
        open_orders = Order.objects.filter(
            account_id__in=account_ids, status__in=Order.OPEN_STATUSES
        )
        if config_ids:
            open_orders = open_orders.filter(config_id__in=configs.values("pk"))
        # Paper orders live only here: cancelling is a state change. Live orders must be
        # cancelled at the venue by the live broker before they are marked here.
        result.orders_cancelled = open_orders.filter(account__mode=Account.Mode.PAPER).update(
            status=Order.Status.CANCELLED, reject_reason=f"cancelled: {reason}"[:500]
        )
        result.live_orders_open = open_orders.filter(account__mode=Account.Mode.LIVE).count()
    log.warning("stop_trading (%s): %s", reason, result.summary())
    return result


def resume_account(account: Account) -> None:
    """Lift the kill switch on one account (configs stay inactive until switched on)."""
    Account.objects.filter(pk=account.pk).update(halted=False, halted_at=None, halted_reason="")


def snapshot_equity(now=None) -> int:
    """Store one EquitySnapshot per account at ``now`` (UTC, truncated to the second).
    Idempotent for a given ``now``. Returns the number of snapshots written."""
    from orders.equity import value_account
    from orders.models import EquitySnapshot

    now = (now or timezone.now()).replace(microsecond=0)
    written = 0
    for account in Account.objects.select_related("exchange"):
        valuation = value_account(account)
        if valuation.unpriced_assets:
            log.warning(
                "equity of %s leaves out unpriced %s", account, ", ".join(valuation.unpriced_assets)
            )
        _, created = EquitySnapshot.objects.get_or_create(
            account=account, ts=now, defaults={"equity": valuation.equity, "cash": valuation.cash}
        )
        written += int(created)
    return written
