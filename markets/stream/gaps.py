"""Interruptions of a venue stream and their REST fill.

An interruption is time during which trades of some symbols may be missing (start-up, a drop the
adapter healed, a silent connection the watchdog restarted). Every bar overlapping it comes from
REST, never from the (incomplete) aggregator: while it lasts, candles are fetched as each bar
closes (the polling fallback); afterwards the interval is filled to its end. Unfinished fills at
shutdown go to the collector's gap set. :class:`GapFill` is a part of
:class:`~markets.stream.venue.VenueStream` (it works on the stream's state).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING

from markets.exchanges.base import CandleRow
from markets.stream.config import SymbolSpec, log
from markets.timeframes import floor_ms, timeframe_ms

if TYPE_CHECKING:
    from markets.stream.venue import Connection


@dataclasses.dataclass
class Interruption:
    """Time during which trades of ``codes`` may be missing; ``end`` None while it lasts.

    Bars overlapping it are taken from REST, not from the aggregator. ``filled`` holds, per
    (code, timeframe), the open time up to which REST candles were fetched."""

    codes: frozenset[str]
    start: int
    end: int | None = None
    filled: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    next_try: float = 0.0
    #: Per (code, timeframe), the first open time to push to charts; older REST candles are
    #: stored only (default: the interruption's start). At start-up: the bar after the last
    #: stored one, so bars that closed while the stream was down reach open charts.
    publish_from: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    #: A late-trade repair's (code, minute open ms); None for a connection's interruption.
    repair: tuple[str, int] | None = None

    def overlaps(self, code: str, start: int, end: int) -> bool:
        return code in self.codes and start < (self.end if self.end is not None else 2**62) \
            and self.start < end


#: Late-trade repairs waiting for REST at most; beyond it a late trade is only counted.
MAX_REPAIRS = 1_000


def ceil_ms(ms: int, step: int) -> int:
    return -(-ms // step) * step


class GapFill:
    """REST fills of :class:`Interruption` s (start-up catch-up included)."""

    async def _init_catchup(self, startup: Interruption, now: int) -> None:
        """Fill from the newest stored candle (at most ``catchup_candles`` back) at start."""
        for spec in self.venue.symbols:
            for tf in spec.timeframes:
                step = timeframe_ms(tf)
                closed_end = floor_ms(now - self.config.grace_ms, tf)
                try:
                    last = await self._in(self.db, self.last_stored_fn, spec.id, tf)
                except Exception as exc:
                    log.warning("%s: cannot read stored candles: %s", self.slug, exc)
                    last = None
                floor = closed_end - self.config.catchup_candles * step
                start = floor if last is None else max(last + step, floor)
                startup.filled[(spec.code, tf)] = min(start, floor_ms(startup.start, tf))
                if last is not None:
                    startup.publish_from[(spec.code, tf)] = start

    def _open_gap(self, conn: Connection, since_ms: int, why: str) -> None:
        gap = Interruption(frozenset(conn.codes), since_ms - self.config.margin_ms)
        conn.gap = gap
        self.interruptions.append(gap)
        self.throttle.warning(f"ws:{self.slug}", "%s: stream interrupted (%s); filling over "
                              "REST until it is back", self.slug, why)

    def _late_trade(self, code: str, ts_ms: int) -> None:
        """The aggregator dropped a trade whose bar had closed (the watermark or the grace
        closed it too early, or the venue sent it late): that bar, and every longer bar holding
        it, is taken from REST, so the stored candle is the venue's and not short of a trade.
        The stream's copy of a bar not stored yet is dropped; one already stored and pushed is
        overwritten and pushed again as a correction. One repair per symbol and minute."""
        if code not in self.specs:
            return
        minute = ts_ms - ts_ms % 60_000
        key = (code, minute)
        if key in self.repairs:
            return
        if len(self.repairs) >= MAX_REPAIRS:
            self.throttle.warning(f"late-max:{self.slug}", "%s: %d late-trade repairs already "
                                  "wait for REST; a late trade of %s is dropped unrepaired",
                                  self.slug, len(self.repairs), code)
            return
        gap = Interruption(frozenset((code,)), minute, minute + 60_000, repair=key)
        self.repairs[key] = gap
        self.interruptions.append(gap)
        self.late_repairs += 1
        self.throttle.warning(f"late:{self.slug}", "%s: a trade of %s at %d arrived after its "
                              "bar closed; that bar is taken from REST", self.slug, code, ts_ms)

    def _dirty(self, code: str, start: int, end: int) -> bool:
        return any(r.overlaps(code, start, end) for r in self.interruptions)

    async def _fill_loop(self) -> None:
        while True:
            try:
                await self._fill_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: fill loop error", self.slug)
            await asyncio.sleep(1.0)

    async def _fill_once(self) -> None:
        now = self.clock()
        for gap in list(self.interruptions):
            if gap.next_try > time.monotonic():
                continue
            complete = gap.end is not None
            for code in sorted(gap.codes):
                spec = self.specs[code]
                for tf in spec.timeframes:
                    step = timeframe_ms(tf)
                    closed_end = floor_ms(now - self.config.grace_ms, tf)
                    want = closed_end if gap.end is None else min(closed_end,
                                                                  ceil_ms(gap.end, step))
                    start = gap.filled.get((code, tf), floor_ms(gap.start, tf))
                    if want > start:
                        try:
                            await self._fill(spec, tf, start, want, closed_end,
                                             publish_from=gap.publish_from.get(
                                                 (code, tf), floor_ms(gap.start, tf)))
                        except Exception as exc:
                            self.rest_failures += 1
                            gap.next_try = time.monotonic() + self.config.fill_retry_s
                            self.throttle.warning(f"rest:{self.slug}", "%s: REST fill failed, "
                                                  "retrying: %s", self.slug, exc)
                            return
                        gap.filled[(code, tf)] = start = want
                    if gap.end is not None and start < ceil_ms(gap.end, step):
                        complete = False
            if complete:
                self.interruptions.remove(gap)
                if gap.repair is not None:
                    self.repairs.pop(gap.repair, None)

    async def _fill(self, spec: SymbolSpec, tf: str, start: int, end: int,
                    closed_end: int, publish_from: int) -> None:
        """Fetch, store and push REST candles ``[start, end)``. Catch-up history older than
        the interruption (``publish_from``) is stored but not pushed."""
        rows: list[CandleRow] = await self._in(self.io, self.rest.fetch_candles, spec.code, tf,
                                               start, end)
        rows = [r for r in rows if start <= r.open_time_ms < end]
        self.rest_fills += 1
        self.last_fill_ok_wall = time.time()
        self.throttle.reset(f"rest:{self.slug}")
        if not rows:
            return
        await self._in(self.db, self.store_fn, spec.id, tf, rows)
        self.stored += len(rows)
        latest = closed_end - timeframe_ms(tf)
        for row in rows:
            if row.open_time_ms < publish_from:
                continue
            bar = {"t": row.open_time_ms, "o": row.open, "h": row.high, "l": row.low,
                   "c": row.close, "v": row.volume}
            # Only the latest closed bar is worth evaluating; older ones are history.
            await self._emit_closed(spec.code, tf, bar, evaluate=row.open_time_ms == latest)

    async def _report_unfinished(self) -> None:
        """At shutdown, hand unfilled interruptions to the collector (Redis gap set)."""
        if self.report_gap_fn is None:
            return
        now = self.clock()
        for gap in self.interruptions:
            for code in gap.codes:
                for tf in self.specs[code].timeframes:
                    step = timeframe_ms(tf)
                    start = gap.filled.get((code, tf), floor_ms(gap.start, tf))
                    end = ceil_ms(gap.end if gap.end is not None else now, step)
                    if end > start:
                        with contextlib.suppress(Exception):
                            await self._in(self.io, self.report_gap_fn, self.slug, code, tf,
                                           start, end)
