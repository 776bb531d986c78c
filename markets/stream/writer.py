"""Closed bars of a venue stream, stored as soon as they close: bars the aggregator closes
wait in ``pending`` and wake the writer, which upserts what has gathered (one call per series;
bars closing while a batch is stored form the next batch), then pushes and evaluates them; a
failed batch is kept and retried after ``flush_interval_s``. A bar an interruption overlaps is
REST's business and is dropped here. :class:`BarWriter` is a part of
:class:`~markets.stream.venue.VenueStream`.
"""

from __future__ import annotations

import asyncio

from markets.aggregator import Bar


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
        sends: list[dict] = []
        for bar in bars:
            await self._emit_closed(bar.symbol, bar.timeframe, bar.to_wire(), evaluate=True,
                                    sends=sends)
        await self._send_evaluations(sends)

    def _store_groups(self, groups: dict[tuple[str, str], list]) -> None:
        for (code, tf), rows in groups.items():
            self.store_fn(self.specs[code].id, tf, rows)
