"""Live fills as they happen: each live account's user-data stream (Binance futures listenKey
stream, Binance spot WebSocket API, Upbit/Bithumb private WebSocket) drives the same settle
paths as the minute reconciliation, seconds instead of up to a minute later.

An event is a hint, not the record: it names the order or stop that changed, and the venue's
REST answer (order with its fills, stop with its market order) is what gets applied — the same
``services.apply_order_info`` / ``venue_stops.settle`` reconciliation uses, so an event seen
twice, or seen after reconciliation already applied the change, adds nothing (fills are unique
per trade id). Each (re)connection, and an expired listenKey, triggers a full reconciliation of
the account, since events may have been missed meanwhile. The minute reconciliation keeps
running: this only makes it faster.

Balance events are the exception: they carry the venue's balances themselves
(``outboundAccountPosition``, futures ``ACCOUNT_UPDATE``, ``myAsset``), so they are stored as
they arrive (``orders.venue_balances``), with the account marked confirmed by the venue; a
(re)connection fetches every balance over REST.

Run by ``python manage.py userstreams`` (one asyncio task per live account with keys; a live
account whose stored keys cannot be decrypted is skipped, logged and counted, not followed).
"""

from __future__ import annotations

import asyncio
import logging

from markets.exchanges.base import BalanceUpdate, OrderUpdate, StopUpdate, StreamNotice
from markets.exchanges.errors import ExchangeError, OrderNotFound
from markets.fields import UNREADABLE
from markets.models import Account
from orders import services, venue_balances, venue_stops
from orders.brokers import Broker, BrokerUnavailable
from orders.models import Order

log = logging.getLogger(__name__)


def _db(fn, *args):
    """Run database work in a worker thread and close that thread's connection after: the
    executor's threads come and go, their connections must not linger."""
    from django.db import connection

    try:
        return fn(*args)
    finally:
        connection.close()


def apply_event(account: Account, event, broker: Broker) -> str:
    """Apply one user-stream event of ``account``; returns what was done (for logs, tests):
    ``order``, ``stop``, ``balances``, ``resync``, or ``ignored``."""
    if isinstance(event, BalanceUpdate):
        venue_balances.store(account, event.balances, full=False,
                             wallet_totals=event.wallet_totals)
        return "balances"
    if isinstance(event, StreamNotice):
        services.reconcile_live_orders(account_ids=[account.pk],
                                       broker_factory=lambda _account: broker)
        venue_stops.reconcile_stops(account_ids=[account.pk],
                                   broker_factory=lambda _account: broker)
        venue_balances.fetch(account, broker)
        return "resync"
    if isinstance(event, StopUpdate):
        order = Order.objects.filter(
            account=account, client_order_id=event.stop.client_id, trigger_price__isnull=False,
            status__in=Order.OPEN_STATUSES,
        ).select_related("account", "symbol__exchange").first()
        if order is None:
            return "ignored"
        try:
            stop = broker.fetch_stop(order.symbol.code, order.client_order_id)
        except OrderNotFound:
            return "ignored"  # reconciliation decides what a stop the venue lost means
        venue_stops.settle(order, stop, broker)
        return "stop"
    if isinstance(event, OrderUpdate):
        client_id = event.order.client_order_id
        order = Order.objects.filter(
            account=account, client_order_id=client_id, trigger_price__isnull=True,
            status__in=Order.OPEN_STATUSES,
        ).select_related("account", "symbol__exchange").first() if client_id else None
        if order is None:
            # Not one of ours, or final already; a venue stop's market order is reported by
            # its StopUpdate.
            return "ignored"
        info = broker.fetch(order.symbol.code, order.client_order_id, order.exchange_order_id)
        services.apply_order_info(order, info)
        return "order"
    return "ignored"


async def follow_account(account_id: int, *, broker_factory=None) -> None:
    """Follow one account's user stream until cancelled (the adapter reconnects by itself).
    Database work runs in a thread, one event at a time; an event that fails is logged and
    skipped (reconciliation catches up), never ends the stream."""
    from orders.brokers import broker_for

    broker_factory = broker_factory or broker_for
    account = await asyncio.to_thread(
        _db, lambda: Account.objects.select_related("exchange").get(pk=account_id))
    broker = await asyncio.to_thread(broker_factory, account)
    stream = broker.adapter.user_stream()
    try:
        async for event in stream:
            try:
                what = await asyncio.to_thread(_db, apply_event, account, event, broker)
            except (ExchangeError, BrokerUnavailable) as exc:
                log.warning("user stream %s: %s not applied: %s", account,
                            type(event).__name__, exc)
            except Exception:
                log.exception("user stream %s: applying %s failed", account, event)
            else:
                log.debug("user stream %s: %s -> %s", account, type(event).__name__, what)
    finally:
        await stream.aclose()
        await asyncio.to_thread(broker.close)


def live_accounts() -> tuple[list[int], list[int]]:
    """``(followed, unreadable)``: the live accounts whose user stream can be followed (keys
    stored and readable), and the live accounts skipped because their stored keys cannot be
    decrypted (they must be entered again). Both empty while live trading is off on this server
    (``TRADING_LIVE``): nothing is followed."""
    from django.conf import settings

    if not getattr(settings, "TRADING_LIVE", False):
        return [], []
    followed, unreadable = [], []
    for account in Account.objects.filter(mode=Account.Mode.LIVE):
        state = account.credentials_state
        if state == Account.CREDENTIALS_STORED:
            followed.append(account.pk)
        elif state == Account.CREDENTIALS_UNREADABLE:
            unreadable.append(account.pk)
    return followed, unreadable


def live_account_ids() -> list[int]:
    """The live accounts :func:`live_accounts` follows."""
    return live_accounts()[0]


async def follow_all(*, interval_s: float = 60.0, broker_factory=None, follow=None,
                     rounds: int | None = None) -> None:
    """Follow every live account with readable keys; every ``interval_s`` the list is read again:
    accounts made live are followed, accounts no longer live are let go, and a stream that
    ended (bad keys, say: logged) is started again. ``follow`` and ``rounds`` are for tests."""
    follow = follow or (lambda pk: follow_account(pk, broker_factory=broker_factory))
    running: dict[int, asyncio.Task] = {}
    skipped: list[int] = []  # live accounts with unreadable keys, logged when the list changes

    async def one(pk: int) -> None:
        try:
            await follow(pk)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("user stream of account %s stopped; retried in %.0f s", pk,
                          interval_s)

    try:
        done_rounds = 0
        while rounds is None or done_rounds < rounds:
            followed, unreadable = await asyncio.to_thread(_db, live_accounts)
            if unreadable != skipped:
                if unreadable:
                    log.warning("user streams: %d live account(s) skipped, API %s: id(s) %s",
                                len(unreadable), UNREADABLE,
                                ", ".join(map(str, unreadable)))
                skipped = unreadable
            wanted = set(followed)
            for pk, task in list(running.items()):
                if pk not in wanted or task.done():
                    task.cancel()
                    del running[pk]
            for pk in sorted(wanted - running.keys()):
                running[pk] = asyncio.ensure_future(one(pk))
            done_rounds += 1
            await asyncio.sleep(interval_s)
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
