"""Helpers for live-trading tests against the exchange simulator: waiting for a condition,
and following an account's user stream on its own thread (as ``manage.py userstreams`` runs
it)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from django.db import connection

from orders import userstream
from orders.brokers import broker_for


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
