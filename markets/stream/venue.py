"""One venue's live stream: trades -> bars -> wire, store, evaluation. See the package docstring.

:class:`VenueStream` holds the connections, the aggregator and the loops; its parts live by job:
``config`` (specs, timings), ``gaps`` (interruptions and their REST fill), ``publisher``
(forming bars, tickers, closed bars pushed once) and ``writer`` (batched upserts).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections

from markets import wire
from markets.aggregator import Bar, BarAggregator
from markets.backoff import Backoff
from markets.exchanges import ADAPTERS
from markets.exchanges.base import ExchangeAdapter
from markets.stream.config import (
    LogThrottle,
    StreamConfig,
    SymbolSpec,
    VenueSpec,
    connection_groups,
    log,
)
from markets.stream.gaps import GapFill, Interruption
from markets.stream.marks import MarkStream
from markets.stream.publisher import PUBLISHED_MEMORY, Publisher
from markets.stream.writer import BarWriter
from markets.timeframes import TIMEFRAMES

__all__ = ["PUBLISHED_MEMORY", "Connection", "Interruption", "LogThrottle",
           "StreamConfig", "SymbolSpec", "VenueSpec", "VenueStream"]


@dataclasses.dataclass
class Connection:
    codes: list[str]
    adapter: ExchangeAdapter
    task: asyncio.Task | None = None
    inner: asyncio.Task | None = None
    seen_connects: int = 0
    seen_error: str = ""
    last_item_ms: int = 0  # venue clock of the last trade received
    #: The minute up to which the watermark closed this connection's bars (venue ms), and
    #: the venue time at which it next closes some (the next boundary plus the lag).
    closed_minute: int = 0
    watermark_due: int = 0
    gap: Interruption | None = None
    restarts: int = 0
    connects_at_start: int = 0
    started_wall: float = 0.0
    #: Paces restarts of this connection's stream (the stream's config sets its bounds).
    backoff: Backoff = dataclasses.field(default_factory=Backoff)


class VenueStream(GapFill, Publisher, BarWriter):
    """Streams one venue's active symbols. ``run()`` until ``stop()``.

    Injected for tests: ``clock_ms`` (the venue's clock), ``publish`` (async group, message),
    ``send_task`` (name, kwargs), ``rest_adapter`` and ``stream_adapter_factory``.
    """

    def __init__(
        self,
        venue: VenueSpec,
        *,
        rest_adapter: ExchangeAdapter,
        stream_adapter_factory: Callable[[], ExchangeAdapter],
        publish: Callable[[str, dict], Awaitable[None]],
        send_task: Callable[[str, dict], Any],
        evaluate_task: str,
        clock_ms: Callable[[], int] | None = None,
        config: StreamConfig | None = None,
        store: Callable[[int, str, list], tuple[int, int]] | None = None,
        last_stored: Callable[[int, str], int | None] | None = None,
        beat: Callable[..., None] | None = None,
        report_gap: Callable[..., None] | None = None,
        exit_guard_task: str | None = None,
        store_marks: Callable[[str, list], Any] | None = None,
        watchers: list[Any] | None = None,
        gate: Any | None = None,
        watched: Callable[[list[str]], Awaitable[set[str] | None]] | None = None,
    ) -> None:
        self.venue = venue
        self.slug = venue.slug
        self.config = config or StreamConfig()
        self.clock = clock_ms or (lambda: int(time.time() * 1000))
        self.rest = rest_adapter
        self.publish_fn = publish
        self.send_task_fn = send_task
        self.evaluate_task = evaluate_task
        #: Sent by name with each throttled price update (once a second per symbol at most):
        #: ``{venue, symbol, price, ts_ms, high, low}``, high/low of the trades since the last one.
        self.exit_guard_task = exit_guard_task
        #: Offered each throttled price update and closed bar (``markets.stream_hooks``).
        self.watchers = list(watchers or ())
        self.extremes: dict[str, tuple[float, float]] = {}
        #: ``wants(venue, code, timeframe) -> bool``: is an evaluation task worth sending for
        #: this closed bar (an active config trades it)? None: send for every bar.
        self.gate = gate
        #: ``await watched(groups)``: which of the forming-bar groups someone listens to (None:
        #: all). Forming bars go only to those; None here: to every group.
        self.watched_fn = watched
        self.watched_groups: set[str] | None = None
        self.watched_at = 0.0
        self.forming_groups = [wire.bars_group(venue.slug, s.code, tf) for s in venue.symbols
                               for tf in s.timeframes]
        if store is None or last_stored is None:
            from markets.candles import last_open_time_ms, upsert_candles

            store = store or upsert_candles
            last_stored = last_stored or last_open_time_ms
        self.store_fn, self.last_stored_fn = store, last_stored
        self.beat_fn = beat
        self.report_gap_fn = report_gap
        self.specs = {s.code: s for s in venue.symbols}
        wanted = {tf for s in venue.symbols for tf in s.timeframes}
        self.timeframes = tuple(tf for tf in TIMEFRAMES if tf in wanted) or ("1m",)
        self.agg = BarAggregator(self.timeframes, grace_ms=self.config.grace_ms)
        self.agg.on_late = self._late_trade
        caps = ADAPTERS[venue.adapter].capabilities
        limit, url_chars = caps.ws_streams_per_connection, caps.ws_url_max_chars
        self.connections = [
            Connection(g, stream_adapter_factory(), backoff=Backoff(
                self.config.reconnect_min_s, self.config.reconnect_max_s,
                healthy_s=self.config.reconnect_healthy_s))
            for g in connection_groups([s.code for s in venue.symbols], limit, url_chars)
        ]
        self.interruptions: list[Interruption] = []
        #: Late-trade repairs in progress: (code, minute open ms) -> its interruption.
        self.repairs: dict[tuple[str, int], Interruption] = {}
        self.late_repairs = 0
        self.pending: list[Bar] = []
        #: Set when closed bars wait in ``pending``: the writer stores them at once.
        self._bars_waiting = asyncio.Event()
        self.evaluated: dict[tuple[str, str], int] = {}
        #: Closed bars pushed, per (code, timeframe): open time -> the bar as pushed (the last
        #: PUBLISHED_MEMORY of them), so overlapping fills push a bar once, a correction again.
        self.published: dict[tuple[str, str], dict[int, tuple]] = {}
        self.touched: set[str] = set()
        self.ticks: dict[str, tuple[float, int]] = {}
        self.ticker_sent: dict[str, float] = {}
        self.throttle = LogThrottle(self.config.log_every_s)
        self.db = ThreadPoolExecutor(1, thread_name_prefix=f"stream-db-{self.slug}")
        self.io = ThreadPoolExecutor(1, thread_name_prefix=f"stream-io-{self.slug}")
        self.marks = self._mark_stream(stream_adapter_factory, store_marks, limit, url_chars)
        self.reconnects = 0
        self.rest_fills = 0
        self.rest_failures = 0
        self.stored = 0
        self.published_closed = 0
        self.evaluations_skipped = 0
        self.last_fill_ok_wall = 0.0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._started_wall = time.time()

    def _mark_stream(self, adapter_factory, store_marks, limit, url_chars=None
                     ) -> MarkStream | None:
        """Mark prices of the perpetual symbols, where the venue publishes them."""
        perpetuals = [s.code for s in self.venue.symbols if s.market_type == "perpetual"]
        if not perpetuals or not self.rest.capabilities.mark_price:
            return None
        if store_marks is None:
            from markets.markprice import store_marks

        async def store(slug: str, marks: list) -> Any:
            return await self._in(self.db, store_marks, slug, marks)

        return MarkStream(self.slug, perpetuals, adapter_factory=adapter_factory, store=store,
                          throttle=self.throttle, per_connection=limit,
                          url_max_chars=url_chars,
                          reconnect_min_s=self.config.reconnect_min_s,
                          reconnect_max_s=self.config.reconnect_max_s,
                          reconnect_healthy_s=self.config.reconnect_healthy_s)

    def counters(self) -> dict[str, int]:
        agg = self.agg.counters()
        malformed = sum(c.adapter.stream_stats.malformed for c in self.connections)
        return {
            "trades": agg["accepted"],
            "duplicates": agg["duplicates"],
            "late_skipped": agg["late_skipped"],
            "invalid_skipped": agg["invalid_skipped"],
            "malformed": malformed,
            "skipped": agg["duplicates"] + agg["late_skipped"] + agg["invalid_skipped"]
            + malformed,
            "reconnects": self.reconnects,
            "rest_fills": self.rest_fills,
            "late_repairs": self.late_repairs,
            "evaluations_skipped": self.evaluations_skipped,
            "stored": self.stored,
            **({"marks": self.marks.received} if self.marks else {}),
        }

    def state(self) -> str:
        if all(c.gap is None for c in self.connections):
            return "streaming"
        if time.time() - self.last_fill_ok_wall < 120:
            return "polling"
        return "down"

    def last_message_ms(self) -> int:
        return max((c.adapter.stream_stats.last_message_ms for c in self.connections), default=0)

    async def run(self) -> None:
        """Stream until :meth:`stop`; then flush closed bars and exit. Never raises for a venue
        being unreachable (it keeps retrying)."""
        now = self.clock()
        startup = Interruption(frozenset(self.specs), now - self.config.margin_ms)
        await self._init_catchup(startup, now)
        self.interruptions.append(startup)
        for conn in self.connections:
            conn.gap = startup
            conn.task = asyncio.ensure_future(self._connection_loop(conn))
        self._tasks = [
            asyncio.ensure_future(self._clock_loop()),
            asyncio.ensure_future(self._fill_loop()),
            asyncio.ensure_future(self._writer_loop()),
            asyncio.ensure_future(self._heartbeat_loop()),
            *([asyncio.ensure_future(self.marks.run())] if self.marks else []),
        ]
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def _shutdown(self) -> None:
        for conn in self.connections:
            if conn.task is not None:
                conn.task.cancel()
            if conn.inner is not None:
                conn.inner.cancel()
        for task in self._tasks:
            task.cancel()
        tasks = [*self._tasks, *(c.task for c in self.connections if c.task),
                 *(c.inner for c in self.connections if c.inner)]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Bars the clock allows are closed and stored; forming bars are dropped, never stored.
        flushed = self.agg.flush(self.clock())
        self._closed(flushed.closed)
        with contextlib.suppress(Exception):
            await self._flush_pending()
        await self._report_unfinished()
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.adapter.close()
        with contextlib.suppress(Exception):
            self.rest.close()
        if self.beat_fn is not None:
            with contextlib.suppress(Exception):
                await self._in(self.io, self.beat_fn, self.slug, stopped=True)
        self.db.shutdown(wait=True)
        self.io.shutdown(wait=True)

    async def _in(self, pool: ThreadPoolExecutor, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()

        def call():
            if pool is self.db:
                close_old_connections()
            return fn(*args, **kwargs)

        return await loop.run_in_executor(pool, call)

    async def _consume(self, conn: Connection) -> None:
        async for trade in conn.adapter.stream_trades(conn.codes):
            stats = conn.adapter.stream_stats
            if conn.gap is not None or stats.connects != conn.seen_connects \
                    or stats.last_error != conn.seen_error:  # else the check changes nothing
                self._check_connection(conn, trade.ts_ms)
            conn.last_item_ms = max(conn.last_item_ms, trade.ts_ms)
            if trade.ts_ms >= conn.watermark_due:  # a minute boundary plus the lag passed
                self._close_by_watermark()
            closed = self.agg.add_trade(trade.symbol, trade.trade_id, trade.ts_ms, trade.price,
                                        trade.quantity)
            if closed:
                self._closed(closed)
            self.touched.add(trade.symbol)
            if not (trade.price > 0 and math.isfinite(trade.price)):
                continue  # counted and skipped by the aggregator; never a ticker or a stop
            self.ticks[trade.symbol] = (trade.price, trade.ts_ms)
            high, low = self.extremes.get(trade.symbol, (trade.price, trade.price))
            self.extremes[trade.symbol] = (max(high, trade.price), min(low, trade.price))

    def _check_connection(self, conn: Connection, ts_ms: int | None = None) -> None:
        """Notice drops and reconnects of the adapter's self-healing stream."""
        stats = conn.adapter.stream_stats
        now = self.clock()
        changed = stats.connects != conn.seen_connects or stats.last_error != conn.seen_error
        if changed and conn.seen_connects and conn.gap is None:
            self._open_gap(conn, conn.last_item_ms or now, stats.last_error or "reconnected")
        if stats.connects != conn.seen_connects and conn.seen_connects:
            self.reconnects += 1
        conn.seen_connects, conn.seen_error = stats.connects, stats.last_error
        if ts_ms is not None and conn.gap is not None:
            # The first trade of a (re)opened connection: complete from here on.
            conn.gap.end = max(now, ts_ms) + self.config.margin_ms
            conn.gap = None
            conn.backoff.healthy()
            self.throttle.reset(f"ws:{self.slug}")
            log.info("%s: streaming %d symbol(s)", self.slug, len(conn.codes))

    async def _clock_loop(self) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.forming_interval_s)
            try:
                self._closed(self.agg.close_until(self.clock()))
                self._close_by_watermark()
                for conn in self.connections:
                    self._check_connection(conn)
                    self._watchdog(conn)
                await self._push_forming()
                await self._push_tickers()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: clock loop error", self.slug)

    def _close_by_watermark(self) -> None:
        """Close the bars of each streaming connection's symbols once its trades (venue time,
        never ahead of our clock) are ``watermark_lag_ms`` past their end: a venue's trades on
        one connection arrive in about time order, so a quiet symbol's bar is complete then,
        long before the grace. A trade that still comes later has its bar taken from REST
        (:meth:`_late_trade`)."""
        lag = self.config.watermark_lag_ms
        if lag < 0:
            return
        now = self.clock()
        for conn in self.connections:
            if conn.gap is not None or not conn.last_item_ms:
                continue  # an interruption's bars are REST's anyway
            cutoff = min(conn.last_item_ms, now) - lag
            minute = cutoff - cutoff % 60_000
            if minute > conn.closed_minute:
                conn.closed_minute = minute
                conn.watermark_due = minute + 60_000 + lag
                closed = self.agg.close_symbols_until(conn.codes, cutoff)
                if closed:
                    self._closed(closed)

    def _watchdog(self, conn: Connection) -> None:
        """Reconnect a connection that is open (it connected since it was started) but has
        been silent for ``silence_s``: no trade, no status frame, no pong."""
        stats = conn.adapter.stream_stats
        if conn.inner is None or stats.connects <= conn.connects_at_start:
            return
        last = max(stats.last_message_ms / 1000.0, conn.started_wall)
        if time.time() - last > self.config.silence_s:
            if conn.gap is None:
                self._open_gap(conn, conn.last_item_ms or self.clock(),
                               f"silent for {self.config.silence_s:.0f}s")
            conn.inner.cancel()

    async def _connection_loop(self, conn: Connection) -> None:
        """Run the connection's trade stream; restart it (jittered exponential backoff) when
        the watchdog cancels it or it fails."""
        while True:
            conn.connects_at_start = conn.adapter.stream_stats.connects
            conn.started_wall = time.time()
            conn.inner = asyncio.ensure_future(self._consume(conn))
            await asyncio.wait({conn.inner})
            inner, conn.inner = conn.inner, None
            if inner.cancelled():
                why = "watchdog"
            elif inner.exception() is not None:
                why = f"{type(inner.exception()).__name__}: {inner.exception()}"
            else:
                why = "stream ended"
            if conn.gap is None:
                self._open_gap(conn, conn.last_item_ms or self.clock(), why)
            conn.restarts += 1
            await conn.backoff.sleep()
            stats = conn.adapter.stream_stats
            self.reconnects += 1
            conn.seen_connects, conn.seen_error = stats.connects, stats.last_error

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.beat_now()
            await asyncio.sleep(self.config.heartbeat_s)

    async def beat_now(self) -> None:
        if self.beat_fn is None:
            return
        fields = {"state": self.state(), "last_message_ms": self.last_message_ms(),
                  "symbols": len(self.specs), **self.counters()}
        try:
            await self._in(self.io, self.beat_fn, self.slug, **fields)
        except Exception as exc:
            self.throttle.warning(f"beat:{self.slug}", "%s: heartbeat failed: %s", self.slug, exc)
