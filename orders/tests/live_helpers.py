"""Helpers for live-trading tests against the exchange simulator: a live account on a venue,
the venue's last close, waiting for a condition or for reconciliation to settle an order, and
following an account's user stream on its own thread (as ``manage.py userstreams`` runs it)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from decimal import Decimal

from django.db import connection

from markets.exchanges import get_adapter
from markets.models import Account, Exchange, Symbol
from orders import services, userstream
from orders.brokers import broker_for
from orders.models import Order


def live_account(owner, adapter, url, code, base, quote, key, secret, *, slug=None, name=None,
                 label=None, quote_asset=None, **symbol_fields):
    """A live account with ``key``/``secret`` on a new venue ``adapter`` at ``url`` (no
    WebSocket), and the venue's symbol ``code``; returns ``(account, symbol)``."""
    venue = Exchange.objects.create(slug=slug or f"live-{adapter}", name=name or f"Sim {adapter}",
                                    adapter=adapter, rest_url=url, ws_url="ws://127.0.0.1:1")
    symbol = Symbol.objects.create(exchange=venue, code=code, base=base, quote=quote,
                                   **symbol_fields)
    extra = {"quote_asset": quote_asset} if quote_asset else {}
    account = Account.objects.create(owner=owner, exchange=venue, label=label or f"live {adapter}",
                                     mode="live", api_key=key, api_secret=secret, **extra)
    return account, symbol


def last_close(adapter_name, url, code) -> Decimal:
    """The close of ``code``'s last closed minute at the venue."""
    adapter = get_adapter(adapter_name, rest_url=url)
    now = int(time.time() * 1000)
    close = adapter.fetch_candles(code, "1m", now - 600_000, now + 60_000)[-1].close
    adapter.close()
    return Decimal(repr(close))


def settled(order: Order, timeout_s: float = 10.0) -> Order:
    """The order once reconciliation with the venue finds it final (waits for the condition)."""
    deadline = time.monotonic() + timeout_s
    while True:
        services.reconcile_live_orders([order.account_id])
        order.refresh_from_db()
        if order.status not in Order.OPEN_STATUSES or time.monotonic() > deadline:
            return order
        time.sleep(0.1)


def wait_for(condition, timeout_s: float, step_s: float = 0.01):
    """Poll ``condition`` until it returns something true or ``timeout_s`` passes; returns
    its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step_s)


class Following:
    """``follow_account`` on its own thread and event loop for a ``with`` block; the stream's
    broker counts its REST balance fetches (``fetches``). Leaving the block cancels the stream
    and asserts that it stopped."""

    def __init__(self, account):
        self.account = account
        self.fetches = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _broker(self, account):
        broker = broker_for(account)
        fetch = broker.balances

        def counted():
            self.fetches += 1
            return fetch()

        broker.balances = counted
        return broker

    def _run(self):
        async def main():
            task = asyncio.ensure_future(
                userstream.follow_account(self.account.pk, broker_factory=self._broker))
            while not self.done.is_set() and not task.done():
                await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        try:
            asyncio.run(main())
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the user stream did not stop when cancelled"
