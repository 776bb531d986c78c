"""The mark-price part of a venue's stream: for a venue whose capabilities say ``mark_price``,
its active perpetual symbols' ``stream_mark_prices`` (Binance ``@markPrice@1s``) on connections
of their own (the trade connections and their gap bookkeeping stay as they are), the newest
mark per symbol kept in memory and stored about once a second
(:func:`markets.markprice.store_marks`). When this stream is down, the collector's minute job
fills stale marks over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from markets.backoff import Backoff
from markets.exchanges.base import ExchangeAdapter, MarkPrice
from markets.stream.config import connection_groups

log = logging.getLogger("markets.stream")


class MarkStream:
    """Streams and stores mark prices of ``codes``; ``run()`` until cancelled."""

    def __init__(self, slug: str, codes: list[str], *,
                 adapter_factory: Callable[[], ExchangeAdapter],
                 store: Callable[[str, list[MarkPrice]], Awaitable[Any]],
                 throttle, per_connection: int | None = None,
                 url_max_chars: int | None = None, flush_s: float = 1.0,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0,
                 reconnect_healthy_s: float = 5.0) -> None:
        self.slug, self.codes = slug, list(codes)
        self.adapter_factory, self.store = adapter_factory, store
        self.throttle = throttle
        self.groups = connection_groups(self.codes, per_connection, url_max_chars)
        self.flush_s = flush_s
        self.new_backoff = lambda: Backoff(reconnect_min_s, reconnect_max_s,
                                           healthy_s=reconnect_healthy_s)
        self.latest: dict[str, MarkPrice] = {}
        self.received = 0
        self.stored = 0
        self.adapters: list[ExchangeAdapter] = []

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(self._connection(g)) for g in self.groups]
        tasks.append(asyncio.ensure_future(self._flush_loop()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self.flush()
            for adapter in self.adapters:
                with contextlib.suppress(Exception):
                    adapter.close()

    async def _connection(self, codes: list[str]) -> None:
        adapter = self.adapter_factory()
        self.adapters.append(adapter)
        backoff = self.new_backoff()
        while True:
            try:
                async for mark in adapter.stream_mark_prices(codes):
                    self.latest[mark.symbol] = mark
                    self.received += 1
                    backoff.healthy()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.throttle.warning(f"marks:{self.slug}", "%s: mark price stream failed "
                                      "(the collector fills marks over REST meanwhile): %s",
                                      self.slug, exc)
            await backoff.sleep()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.throttle.warning(f"marks-store:{self.slug}", "%s: storing mark prices "
                                      "failed (kept for the next try): %s", self.slug, exc)

    async def flush(self) -> None:
        if not self.latest:
            return
        batch, self.latest = self.latest, {}
        try:
            await self.store(self.slug, list(batch.values()))
        except BaseException:
            for code, mark in batch.items():  # a newer mark received meanwhile wins
                self.latest.setdefault(code, mark)
            raise
        self.stored += len(batch)
