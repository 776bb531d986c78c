"""Which of the stream's closed bars and price updates are worth a trader task (issue 20).

A stream following a whole market (hundreds of symbols) closes a bar per symbol a minute and
sends a price update per symbol a second; most of those symbols have no config and no position,
and a task for each would only flood the trader queue ahead of the bars that matter. The gate
(registered with ``markets.stream_hooks`` in ``OrdersConfig.ready``; ``markets`` never imports
``orders``) tells the stream:

- ``wants(venue, code, timeframe)``: send the evaluation task: an active config trades that
  symbol and timeframe;
- ``guards(venue, code)``: send the exit-guard task: an active config trades the symbol, or a
  position is open on it, or an order is open on it (a resting paper limit is matched there).

The sets are read again on every ``refresh()`` (the stream runner calls it every couple of
seconds; two indexed queries). Until the first read succeeds, every bar and price passes. A
bar skipped in the seconds before a new config is seen is evaluated by beat's catch-up
(``orders.tasks.run_trading``), and an open position is also checked by beat's fallback guard
from candles.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class StreamGate:
    def __init__(self) -> None:
        #: (venue, code, timeframe) with an active config; None: not read yet (all pass).
        self.series: frozenset[tuple[str, str, str]] | None = None
        #: (venue, code) to guard; None: not read yet (all pass).
        self.guarded: frozenset[tuple[str, str]] | None = None
        self.loaded_at = 0.0
        self._warned = False

    def wants(self, venue: str, code: str, timeframe: str) -> bool:
        series = self.series
        return series is None or (venue, code, timeframe) in series

    def guards(self, venue: str, code: str) -> bool:
        guarded = self.guarded
        return guarded is None or (venue, code) in guarded

    async def refresh(self) -> None:
        try:
            self.series, self.guarded = await asyncio.to_thread(self._read)
        except Exception as exc:
            # The last sets stay (or everything passes, before the first read).
            if not self._warned:
                self._warned = True
                log.warning("stream gate: cannot read the active configs and open positions "
                            "(%s); keeping what was read last", exc)
            return
        self._warned = False
        self.loaded_at = time.monotonic()

    @staticmethod
    def _read() -> tuple[frozenset, frozenset]:
        from django.db import connection

        from orders.models import Order, Position
        from strategies.models import StrategyConfig

        try:
            series = frozenset(
                StrategyConfig.objects.active()
                .values_list("symbol__exchange__slug", "symbol__code", "timeframe")
                .distinct()
            )
            guarded = {(venue, code) for venue, code, _ in series}
            guarded.update(
                Position.objects.filter(closed_at__isnull=True)
                .values_list("symbol__exchange__slug", "symbol__code").distinct()
            )
            guarded.update(
                Order.objects.filter(status__in=Order.OPEN_STATUSES)
                .values_list("symbol__exchange__slug", "symbol__code").distinct()
            )
            return series, frozenset(guarded)
        finally:
            # Read every couple of seconds from a worker thread: no connection kept between.
            connection.close()


def make_gate() -> StreamGate:
    return StreamGate()
