"""Closed bars of a venue stream, stored as soon as they close: bars the aggregator closes
wait in ``pending`` and wake the writer, which upserts what has gathered (one call per series;
bars closing while a batch is stored form the next batch), then pushes and evaluates them; a
failed batch is kept and retried after ``flush_interval_s``. A bar an interruption overlaps is
REST's business and is dropped here. :class:`BarWriter` is a part of
:class:`~markets.stream.venue.VenueStream`.
"""

from __future__ import annotations

import asyncio

from markets import wire
from markets.aggregator import Bar

#: Closed-bar pushes in flight at once (well under the channel layer's connection pool).
PUSH_LANES = 8


class BarWriter:
    """Batched upserts of the closed bars the stream itself built."""

    def _closed(self, bars) -> None:
        for bar in bars:
            if bar.timeframe not in self.specs[bar.symbol].timeframes:
                continue
            if self._dirty(bar.symbol, bar.open_time_ms, bar.close_time_ms):
                continue  # REST supplies this bar
            self.pending.append(bar)
        if self.pending:
            self._bars_waiting.set()

    async def _writer_loop(self) -> None:
        while True:
            await self._bars_waiting.wait()
            self._bars_waiting.clear()
            try:
                await self._flush_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.throttle.warning(f"store:{self.slug}", "%s: storing bars failed (kept for "
                                      "the next try): %s", self.slug, exc)
                await asyncio.sleep(self.config.flush_interval_s)
                if self.pending:
                    self._bars_waiting.set()

    async def _flush_pending(self) -> None:
        if not self.pending:
            return
        bars, self.pending = self.pending, []
        # An interruption noticed since these bars closed makes them REST's business.
        bars = [b for b in bars if not self._dirty(b.symbol, b.open_time_ms, b.close_time_ms)]
        groups: dict[tuple[str, str], list[Bar]] = {}
        for bar in bars:
            groups.setdefault((bar.symbol, bar.timeframe), []).append(bar)
        try:
            await self._in(self.db, self._store_groups, groups)
        except Exception:
            self.pending[:0] = bars
            raise
        self.stored += len(bars)
        # On a minute boundary hundreds of symbols close at once, and each push is a Redis round
        # trip or two. So: the series a chart listens to are pushed first (a few in flight at
        # once, a series' bars in order), then every evaluation task goes out in one hop, then
        # the series nobody watched right now are pushed (a chart opened meanwhile gets them).
        watched = self.watched_groups
        first, later = [], []
        for (code, tf), rows in groups.items():
            seen = watched is None or wire.bars_group(self.slug, code, tf) in watched
            (first if seen else later).append((code, tf, rows))
        sends: list[dict] = []
        await self._push_series(first, sends)
        for code, tf, rows in later:
            for bar in rows:
                await self._evaluate_closed(code, tf, bar.to_wire(), sends)
        await self._send_evaluations(sends)
        await self._push_series(later, None)

    async def _push_series(self, series: list, sends: list[dict] | None) -> None:
        """Push each series' bars in order, ``PUSH_LANES`` series at a time; with ``sends``,
        also evaluate them (their tasks appended to ``sends``)."""
        lanes = min(PUSH_LANES, len(series))

        async def lane(k: int) -> None:
            for code, tf, rows in series[k::lanes]:
                for bar in rows:
                    wire_bar = bar.to_wire()
                    await self._push_closed(code, tf, wire_bar)
                    if sends is not None:
                        await self._evaluate_closed(code, tf, wire_bar, sends)

        await asyncio.gather(*(lane(k) for k in range(lanes)))

    def _store_groups(self, groups: dict[tuple[str, str], list]) -> None:
        for (code, tf), rows in groups.items():
            self.store_fn(self.specs[code].id, tf, rows)
