"""The kill switch: stop all of a user's trading, or exactly the configs named.

The scope is always said out loud. ``configs=ALL`` stops everything in reach (the user's, or
every user's for the superuser's command): every config off, every account halted until a
person resumes it, every open order cancelled (live ones at the venue) and, on request, every
open position closed. A list of config ids stops only those configs: they are switched off,
their own open orders cancelled and, on request, their own positions closed; their accounts keep
running for the other configs on them. An empty list, or an id that is not among the caller's
configs, is :class:`NothingSelected` and changes nothing: a stale or empty selection never
means "everything".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Literal

from django.db import transaction
from django.utils import timezone

from markets import wire
from markets.exchanges.errors import ExchangeError
from markets.fields import UNREADABLE
from markets.models import Account
from orders.brokers import BrokerUnavailable, broker_for
from orders.models import Order, Position
from orders.push import batched
from orders.services.closing import close_position
from orders.services.ledger import _cancel_here
from orders.services.manual import cancel_order
from orders.services.payloads import _push_later, account_payload
from strategies.models import StrategyConfig

log = logging.getLogger(__name__)

#: The explicit "everything" scope.
ALL: Literal["all"] = "all"


class NothingSelected(ValueError):
    """The selection names no config (empty, or ids the caller does not own): nothing changed."""


@dataclasses.dataclass
class StopResult:
    configs_deactivated: int = 0
    accounts_halted: int = 0
    orders_cancelled: int = 0
    live_orders_open: int = 0
    positions_closed: int = 0
    #: Closes the venue accepted but had not filled when the kill switch returned.
    positions_closing: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        text = f"deactivated {self.configs_deactivated} config(s)"
        if self.accounts_halted:
            text += f", halted {self.accounts_halted} account(s)"
        text += f", cancelled {self.orders_cancelled} open order(s)"
        if self.positions_closed:
            text += f", closed {self.positions_closed} position(s)"
        if self.positions_closing:
            text += (
                f", sent the close of {self.positions_closing} more position(s) (accepted by "
                "the venue, not yet filled)"
            )
        if self.live_orders_open:
            text += (
                f"; {self.live_orders_open} live order(s) are still open at the venue and must be "
                "cancelled there"
            )
        if self.errors:
            text += "; problems: " + "; ".join(self.errors)
        return text

    def as_dict(self) -> dict:
        return {"summary": self.summary(), **dataclasses.asdict(self)}


def selected_config_ids(user, configs: Literal["all"] | Iterable[int]) -> list[int] | None:
    """The config ids a scope names, checked: None for ALL; NothingSelected for an empty list
    or for ids that are not ``user``'s configs (every user's when ``user`` is None)."""
    if configs == ALL:
        return None
    if isinstance(configs, str | bytes) or not isinstance(configs, Iterable):
        raise NothingSelected(f"say which configs to stop: a list of ids or 'all'; got {configs!r}")
    ids = sorted({int(pk) for pk in configs})
    if not ids:
        raise NothingSelected("no configs selected; nothing was stopped")
    owned = StrategyConfig.objects.filter(pk__in=ids)
    if user is not None:
        owned = owned.filter(owner=user)
    found = set(owned.values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise NothingSelected(
            f"no config with id {', '.join(map(str, missing))}; nothing was stopped"
        )
    return ids


@batched
def stop_trading(
    *,
    user=None,
    configs: Literal["all"] | Iterable[int],
    reason: str = "kill switch",
    close_positions: bool = False,
    broker_factory=None,
) -> StopResult:
    """Stop trading in the scope ``configs`` names (see the module docstring).

    ``user`` limits everything to that user's objects (None = every user, for the superuser's
    command). ``broker_factory(account)`` overrides :func:`orders.brokers.broker_for` (tests).
    Raises :class:`NothingSelected`, before anything changes, for an empty or unknown selection.
    """
    from orders.equity import last_prices

    config_ids = selected_config_ids(user, configs)
    broker_factory = broker_factory or broker_for
    now = timezone.now()
    scope = StrategyConfig.objects.all()
    accounts = Account.objects.all()
    if user is not None:
        scope = scope.filter(owner=user)
        accounts = accounts.filter(owner=user)
    if config_ids is not None:
        scope = scope.filter(pk__in=config_ids)
        accounts = accounts.filter(pk__in=scope.values("account_id"))
    result = StopResult()
    with transaction.atomic():
        # Locked in primary-key order, as execute_signals locks a bar's accounts (no deadlock).
        account_ids = list(
            accounts.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True)
        )
        result.configs_deactivated = scope.filter(is_active=True).update(is_active=False)
        if config_ids is None:
            newly_halted = list(
                Account.objects.filter(pk__in=account_ids, halted=False).values_list(
                    "pk", flat=True
                )
            )
            result.accounts_halted = Account.objects.filter(pk__in=newly_halted).update(
                halted=True, halted_at=now, halted_reason=reason[:255]
            )
            for account in Account.objects.filter(pk__in=newly_halted):
                _push_later(account.owner_id, wire.ACCOUNT_UPDATED, account_payload(account))
    # Venue stops stay working (they only ever reduce a position); closing the position
    # below cancels them first.
    open_orders = Order.objects.filter(
        account_id__in=account_ids, status__in=Order.OPEN_STATUSES, trigger_price__isnull=True
    ).select_related("account__exchange", "symbol__exchange")
    if config_ids is not None:
        open_orders = open_orders.filter(config_id__in=config_ids)
    left: dict[int, list] = {}  # account id -> [label, live orders left open at the venue]
    for order in list(open_orders):
        account = order.account
        try:
            if account.mode != Account.Mode.LIVE:
                order = cancel_order(order, f"cancelled: {reason}")
            elif account.credentials_state == Account.CREDENTIALS_UNREADABLE:
                order = _cancel_without_keys(order, reason, left)
            else:
                order = cancel_order(order, f"cancelled: {reason}", broker=broker_factory(account))
        except (BrokerUnavailable, ExchangeError) as exc:
            result.errors.append(f"order {order.client_order_id}: {exc}")
        if order.status in Order.OPEN_STATUSES:
            result.live_orders_open += 1
        else:
            result.orders_cancelled += 1
    for label, count in left.values():
        result.errors.append(
            f"account {label}: {count} order(s) could not be cancelled at the venue: {UNREADABLE}"
        )
    if close_positions:
        _close_positions(result, account_ids, config_ids, broker_factory, last_prices)
    log.warning("stop_trading (%s): %s", reason, result.summary())
    return result


def _cancel_without_keys(order: Order, reason: str, left: dict[int, list]) -> Order:
    """A live order of an account whose keys cannot be read: one never sent (``new``: no venue
    holds it, and ``send_order`` sends only an order it moves out of ``new`` itself) is
    cancelled here; any other stays open, counted in ``left``, to be cancelled at the venue.
    Decided under the order's row lock: an order a sender claimed meanwhile counts as sent."""
    with transaction.atomic():
        status = Order.objects.select_for_update(of=("self",)).values_list(
            "status", flat=True
        ).get(pk=order.pk)
        if status == Order.Status.NEW:
            return _cancel_here(order, f"cancelled: {reason}")
    if status in Order.OPEN_STATUSES:
        left.setdefault(order.account_id, [order.account.label, 0])[1] += 1
    return Order.objects.select_related("account__exchange", "symbol__exchange").get(
        pk=order.pk
    )


def _close_positions(result, account_ids, config_ids, broker_factory, last_prices) -> None:
    positions = Position.objects.filter(
        account_id__in=account_ids, closed_at__isnull=True
    ).select_related("account__exchange", "symbol__exchange")
    if config_ids is not None:
        positions = positions.filter(config_id__in=config_ids)
    positions = list(positions)
    prices = last_prices({p.symbol_id for p in positions})
    for position in positions:
        price = prices.get(position.symbol_id)
        if price is None:
            result.errors.append(f"no last price for {position.symbol}; position left open")
            continue
        try:
            order = close_position(
                position, "kill_switch", last_price=price, broker=broker_factory(position.account)
            )
        except (BrokerUnavailable, ExchangeError) as exc:
            result.errors.append(f"closing {position.symbol}: {exc}")
            continue
        except Exception as exc:  # one position that cannot close never stops the others
            log.exception("stop_trading: closing position %s failed", position.pk)
            result.errors.append(f"closing {position.symbol}: {exc}")
            continue
        if order is None:
            continue  # closed meanwhile, or a close of it is already working
        if order.status == Order.Status.FILLED:
            result.positions_closed += 1
        elif order.status in Order.OPEN_STATUSES:
            result.positions_closing += 1
        else:
            result.errors.append(
                f"closing {position.symbol}: {order.reject_reason or order.status}"
            )


def resume_account(account: Account) -> None:
    """Lift the kill switch on one account (configs stay inactive until switched on)."""
    Account.objects.filter(pk=account.pk).update(halted=False, halted_at=None, halted_reason="")
