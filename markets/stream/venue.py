"""One venue's live stream: trades -> bars -> wire, store, evaluation. See the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections

from markets import wire
from markets.aggregator import Bar, BarAggregator
from markets.exchanges.base import CandleRow, ExchangeAdapter
from markets.stream.marks import MarkStream
from markets.timeframes import TIMEFRAMES, floor_ms, timeframe_ms

log = logging.getLogger("markets.stream")

#: Closed bars remembered per series to push each once (a day of 1m bars, and then some).
PUBLISHED_MEMORY = 2048
#: Streams one connection may carry, where the venue limits it (Binance: 1024 spot, 200 futures).
MAX_STREAMS_PER_CONNECTION = {"binance_spot": 1024, "binance_futures": 200}


@dataclasses.dataclass(frozen=True)
class SymbolSpec:
    """What the stream needs of one symbol: its code, row id and timeframes."""

    code: str
    id: int
    timeframes: tuple[str, ...]
    market_type: str = "spot"


@dataclasses.dataclass(frozen=True)
class VenueSpec:
    slug: str
    adapter: str
    rest_url: str
    ws_url: str
    symbols: tuple[SymbolSpec, ...]


@dataclasses.dataclass
class StreamConfig:
    """Timings (seconds unless the name says ms)."""

    grace_ms: int = 2_000  # a bucket closes this long after its end (late trades)
    margin_ms: int = 2_000  # widen an interruption by this much on both sides (clock skew)
    forming_interval_s: float = 0.25  # at most 4 forming-bar pushes a second per group
    ticker_interval_s: float = 1.0  # at most one ticker a second per symbol
    flush_interval_s: float = 0.5  # closed bars are stored in batches this often
    silence_s: float = 30.0  # an open connection this quiet is reconnected (watchdog)
    heartbeat_s: float = 5.0
    heartbeat_ttl_s: int = 60
    catchup_candles: int = 400  # at start, fetch at most this many missing candles per series
    fill_retry_s: float = 5.0  # after a failed REST fill, wait this long
    reconnect_min_s: float = 0.5  # watchdog restarts back off from here ...
    reconnect_max_s: float = 30.0  # ... to here (jittered, doubling)
    log_every_s: float = 60.0  # a repeated failure is logged at most this often


class LogThrottle:
    """Logs the first occurrence of a key, then at most once per ``every_s`` (with a count)."""

    def __init__(self, every_s: float = 60.0, logger: logging.Logger = log) -> None:
        self.every_s, self.logger = every_s, logger
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: Any) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        suffix = f" (repeated {n} time(s) since the last report)" if n else ""
        self.logger.warning(msg + suffix, *args)
        return True

    def reset(self, key: str) -> None:
        self._last.pop(key, None)
        self._suppressed.pop(key, None)


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

    def overlaps(self, code: str, start: int, end: int) -> bool:
        return code in self.codes and start < (self.end if self.end is not None else 2**62) \
            and self.start < end


@dataclasses.dataclass
class Connection:
    codes: list[str]
    adapter: ExchangeAdapter
    task: asyncio.Task | None = None
    inner: asyncio.Task | None = None
    seen_connects: int = 0
    seen_error: str = ""
    last_item_ms: int = 0  # venue clock of the last trade received
    gap: Interruption | None = None
    restarts: int = 0
    connects_at_start: int = 0
    started_wall: float = 0.0
    backoff_s: float = 0.0


def _ceil(ms: int, step: int) -> int:
    return -(-ms // step) * step


class VenueStream:
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
        self.extremes: dict[str, tuple[float, float]] = {}
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
        limit = MAX_STREAMS_PER_CONNECTION.get(venue.adapter)
        codes = [s.code for s in venue.symbols]
        groups = [codes[i:i + limit] for i in range(0, len(codes), limit)] if limit else [codes]
        self.connections = [Connection(g, stream_adapter_factory()) for g in groups if g]
        self.interruptions: list[Interruption] = []
        self.pending: list[Bar] = []
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
        self.marks = self._mark_stream(stream_adapter_factory, store_marks, limit)
        self.reconnects = 0
        self.rest_fills = 0
        self.rest_failures = 0
        self.stored = 0
        self.published_closed = 0
        self.last_fill_ok_wall = 0.0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._started_wall = time.time()

    def _mark_stream(self, adapter_factory, store_marks, limit) -> MarkStream | None:
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
                          reconnect_min_s=self.config.reconnect_min_s,
                          reconnect_max_s=self.config.reconnect_max_s)

    # -- counters -----------------------------------------------------------------------------

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

    # -- lifecycle ----------------------------------------------------------------------------

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

    # -- trades -------------------------------------------------------------------------------

    async def _consume(self, conn: Connection) -> None:
        async for trade in conn.adapter.stream_trades(conn.codes):
            self._check_connection(conn, trade.ts_ms)
            conn.last_item_ms = max(conn.last_item_ms, trade.ts_ms)
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
            conn.backoff_s = 0.0
            self.throttle.reset(f"ws:{self.slug}")
            log.info("%s: streaming %d symbol(s)", self.slug, len(conn.codes))

    def _open_gap(self, conn: Connection, since_ms: int, why: str) -> None:
        gap = Interruption(frozenset(conn.codes), since_ms - self.config.margin_ms)
        conn.gap = gap
        self.interruptions.append(gap)
        self.throttle.warning(f"ws:{self.slug}", "%s: stream interrupted (%s); filling over "
                              "REST until it is back", self.slug, why)

    def _closed(self, bars) -> None:
        for bar in bars:
            if bar.timeframe not in self.specs[bar.symbol].timeframes:
                continue
            if self._dirty(bar.symbol, bar.open_time_ms, bar.close_time_ms):
                continue  # REST supplies this bar
            self.pending.append(bar)

    def _dirty(self, code: str, start: int, end: int) -> bool:
        return any(r.overlaps(code, start, end) for r in self.interruptions)

    # -- loops --------------------------------------------------------------------------------

    async def _clock_loop(self) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.forming_interval_s)
            try:
                self._closed(self.agg.close_until(self.clock()))
                for conn in self.connections:
                    self._check_connection(conn)
                    self._watchdog(conn)
                await self._push_forming()
                await self._push_tickers()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: clock loop error", self.slug)

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
            conn.backoff_s = min(max(conn.backoff_s * 2, self.config.reconnect_min_s),
                                 self.config.reconnect_max_s)
            await asyncio.sleep(conn.backoff_s * (0.8 + 0.4 * random.random()))
            stats = conn.adapter.stream_stats
            self.reconnects += 1
            conn.seen_connects, conn.seen_error = stats.connects, stats.last_error

    async def _push_forming(self) -> None:
        touched, self.touched = self.touched, set()
        for code in touched:
            for tf in self.specs[code].timeframes:
                bar = self.agg.forming(code, tf)
                if bar is not None:
                    await self._publish(wire.bars_group(self.slug, code, tf),
                                        wire.bar_message(self.slug, code, tf, bar.to_wire(),
                                                         closed=False))

    async def _push_tickers(self) -> None:
        now = time.monotonic()
        for code, (price, ts) in list(self.ticks.items()):
            if now - self.ticker_sent.get(code, 0.0) >= self.config.ticker_interval_s:
                self.ticker_sent[code] = now
                del self.ticks[code]
                await self._publish(wire.MARKETS_GROUP,
                                    wire.ticker_message(self.slug, code, price, ts))
                high, low = self.extremes.pop(code, (price, price))
                if self.exit_guard_task:
                    await self._send(self.exit_guard_task, {
                        "venue": self.slug, "symbol": code, "price": price, "ts_ms": ts,
                        "high": high, "low": low,
                    })

    async def _send(self, task: str, kwargs: dict) -> None:
        try:
            await self._in(self.io, self.send_task_fn, task, kwargs)
        except Exception as exc:
            self.throttle.warning(f"task:{self.slug}", "%s: cannot send %s: %s", self.slug,
                                  task, exc)

    async def _publish(self, group: str, message: dict) -> bool:
        try:
            await self.publish_fn(group, message)
        except Exception as exc:
            self.throttle.warning(f"publish:{self.slug}", "%s: cannot publish to %s: %s",
                                  self.slug, group, exc)
            return False
        return True

    async def _writer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self._flush_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.throttle.warning(f"store:{self.slug}", "%s: storing bars failed (kept for "
                                      "the next try): %s", self.slug, exc)

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
        for bar in bars:
            await self._emit_closed(bar.symbol, bar.timeframe, bar.to_wire(), evaluate=True)

    def _store_groups(self, groups: dict[tuple[str, str], list]) -> None:
        for (code, tf), rows in groups.items():
            self.store_fn(self.specs[code].id, tf, rows)

    async def _emit_closed(self, code: str, tf: str, bar: dict, *, evaluate: bool) -> None:
        key = (code, tf)
        seen = self.published.setdefault(key, {})
        as_pushed = tuple(sorted(bar.items()))
        if seen.get(bar["t"]) != as_pushed:  # overlapping fills of one bar: pushed once
            if await self._publish(wire.bars_group(self.slug, code, tf),
                                   wire.bar_message(self.slug, code, tf, bar, closed=True)):
                seen.pop(bar["t"], None)
                seen[bar["t"]] = as_pushed
                while len(seen) > PUBLISHED_MEMORY:
                    del seen[next(iter(seen))]
            self.published_closed += 1
        if evaluate and bar["t"] > self.evaluated.get(key, -1):
            self.evaluated[key] = bar["t"]
            kwargs = {"venue": self.slug, "symbol": code, "timeframe": tf,
                      "bar_time_ms": bar["t"]}
            try:
                await self._in(self.io, self.send_task_fn, self.evaluate_task, kwargs)
            except Exception as exc:
                self.throttle.warning(f"task:{self.slug}", "%s: cannot send %s: %s", self.slug,
                                      self.evaluate_task, exc)

    # -- REST fills ---------------------------------------------------------------------------

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
                                                                  _ceil(gap.end, step))
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
                    if gap.end is not None and start < _ceil(gap.end, step):
                        complete = False
            if complete:
                self.interruptions.remove(gap)

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
                    end = _ceil(gap.end if gap.end is not None else now, step)
                    if end > start:
                        with contextlib.suppress(Exception):
                            await self._in(self.io, self.report_gap_fn, self.slug, code, tf,
                                           start, end)

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
