"""Keeping stored candles current: the periodic collection (``markets.tasks.collect_candles``),
the gaps the stream reports, and CSV import/export.

Collection: for every active symbol and timeframe, fetch only what is newer than the newest
stored candle (a symbol with nothing stored gets its last ``COLLECT_INITIAL_CANDLES`` (200)
candles; history is the backfill's job), plus the ranges the stream could not fill itself
(recorded as :class:`~markets.models.PendingRange` rows; the Redis set
``tradesite:stream:gaps`` when the database could not take them), plus the unfinished ranges
other jobs left behind (e.g. a backfill that was stopped; up to
``COLLECT_PENDING_MAX_REQUESTS`` (100) requests of them per run, resumed on the next). A missed
run catches up on the next. 429/418 answers are waited out for up to ``COLLECT_MAX_REFUSED_S``
(45 s, under the minute between runs); a venue that cannot be reached or keeps refusing is
logged once per run and skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import IO

from django.conf import settings

from markets import heartbeat, pending
from markets.adapters import adapter_for
from markets.backfill import (
    BackfillReport,
    CheckedRanges,
    RequestCounter,
    fetch_range,
    now_ms,
    patience,
    plan,
)
from markets.candles import InvalidCandles, last_open_time_ms, upsert_candles
from markets.csvio import CsvError, parse_candles_csv, write_candles_csv
from markets.exchanges.base import ExchangeAdapter
from markets.exchanges.errors import ExchangeError
from markets.models import Candle, Exchange, PendingRange, Symbol
from markets.timeframes import floor_ms, timeframe_ms

log = logging.getLogger(__name__)

DEFAULT_INITIAL_CANDLES = 200
DEFAULT_MAX_REFUSED_S = 45.0
#: Seconds of 5xx / unavailable / timeouts in a row a run retries before skipping the venue.
COLLECT_MAX_FAILING_S = 5.0
DEFAULT_PENDING_MAX_REQUESTS = 100


def gaps_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}stream:gaps"


def report_gap(venue: str, symbol: str, timeframe: str, start_ms: int, end_ms: int,
               client=None) -> None:
    """Ask the collector to fetch ``[start_ms, end_ms)`` (the stream could not): a
    :class:`~markets.models.PendingRange` in the database, which outlives a Redis restart (the
    private Redis keeps nothing); the Redis set only when the database cannot take it."""
    if end_ms <= start_ms:
        return
    try:
        found = Symbol.objects.filter(exchange__slug=venue, code=symbol).first()
        if found is not None:
            pending.open_range(found, timeframe, int(start_ms), int(end_ms),
                               source=PendingRange.Source.STREAM, owned=False)
            return
    except Exception as exc:  # the database is down too: Redis is better than nothing
        log.warning("cannot record the gap %s:%s %s in the database (%s); using Redis",
                    venue, symbol, timeframe, exc)
    (client or heartbeat.client()).sadd(
        gaps_key(), f"{venue}|{symbol}|{timeframe}|{int(start_ms)}|{int(end_ms)}")


def reported_gaps(client=None) -> dict[tuple[str, str, str], list[tuple[str, int, int]]]:
    """Reported gaps grouped by (venue, symbol, timeframe): (member, start, end)."""
    out: dict[tuple[str, str, str], list[tuple[str, int, int]]] = {}
    for member in (client or heartbeat.client()).smembers(gaps_key()):
        try:
            venue, symbol, tf, start, end = member.split("|")
            out.setdefault((venue, symbol, tf), []).append((member, int(start), int(end)))
        except ValueError:
            log.warning("dropping unreadable reported gap %r", member)
            (client or heartbeat.client()).srem(gaps_key(), member)
    return out


@dataclasses.dataclass
class CollectReport(BackfillReport):
    venues_skipped: list[str] = dataclasses.field(default_factory=list)
    gaps_reported: int = 0


def collect(
    *,
    clock_ms: Callable[[], int] | None = None,
    adapter_factory: Callable[[Exchange], ExchangeAdapter] | None = None,
) -> CollectReport:
    """One collection run over every active exchange with active symbols, and every exchange
    with unfinished ranges no job owns."""
    clock_ms = clock_ms or now_ms
    adapter_factory = adapter_factory or adapter_for
    report = CollectReport()
    initial = int(getattr(settings, "COLLECT_INITIAL_CANDLES", DEFAULT_INITIAL_CANDLES))
    gaps = reported_gaps()
    symbols = list(Symbol.objects.active().select_related("exchange").order_by(
        "exchange__slug", "code"))
    by_venue: dict[int, list[Symbol]] = {}
    exchanges: dict[int, Exchange] = {}
    for s in symbols:
        by_venue.setdefault(s.exchange_id, []).append(s)
        exchanges[s.exchange_id] = s.exchange
    rows_by_venue: dict[int, list[PendingRange]] = {}
    for row in pending.unowned():
        rows_by_venue.setdefault(row.symbol.exchange_id, []).append(row)
        exchanges.setdefault(row.symbol.exchange_id, row.symbol.exchange)
    for exchange_id, exchange in exchanges.items():
        adapter = adapter_factory(exchange)
        counter = RequestCounter().attach(adapter)
        # A passing 5xx is tried again a couple of times (1 s, 2 s); a venue that keeps
        # failing (or cannot be reached) is skipped this run, so it never holds up the others.
        waiting = patience("COLLECT_MAX_REFUSED_S", DEFAULT_MAX_REFUSED_S,
                           max_failing_s=COLLECT_MAX_FAILING_S)
        try:
            for symbol in by_venue.get(exchange_id, []):
                for tf in symbol.timeframes:
                    if tf not in adapter.capabilities.timeframes:
                        continue
                    step = timeframe_ms(tf)
                    end = floor_ms(clock_ms(), tf)
                    last = last_open_time_ms(symbol.id, tf)
                    start = last + step if last is not None else end - initial * step
                    fetch_range(adapter, symbol, tf, start, end, report=report,
                                clock_ms=clock_ms, waiting=waiting)
                    report.series += 1
                    for member, a, b in gaps.get((exchange.slug, symbol.code, tf), []):
                        fetch_range(adapter, symbol, tf, a, b, report=report, clock_ms=clock_ms,
                                    waiting=waiting)
                        report.gaps_reported += 1
                        heartbeat.client().srem(gaps_key(), member)
            fill_pending(rows_by_venue.get(exchange_id, []), adapter, report, counter,
                         clock_ms=clock_ms, waiting=waiting)
        except ExchangeError as exc:
            # Logged once per run; the next run (a minute later) tries again from the store.
            log.warning("collect: %s unreachable, skipped this run: %s", exchange.slug, exc)
            report.venues_skipped.append(exchange.slug)
        finally:
            report.add_patience(waiting)
            report.requests += counter.count
            adapter.close()
    return report


def fill_pending(rows: list[PendingRange], adapter: ExchangeAdapter, report: CollectReport,
                 counter: RequestCounter, *, clock_ms: Callable[[], int], waiting) -> None:
    """Fetch what is still missing in each unowned row, oldest first, shrinking the row as
    chunks are stored; stop after ``COLLECT_PENDING_MAX_REQUESTS`` requests this run."""
    limit = counter.count + int(getattr(settings, "COLLECT_PENDING_MAX_REQUESTS",
                                        DEFAULT_PENDING_MAX_REQUESTS))
    for row in rows:
        if counter.count >= limit:
            return
        if not pending.claim(row):
            continue  # another collector took it
        symbol, tf = row.symbol, row.timeframe
        if tf not in adapter.capabilities.timeframes:
            pending.finish(row)
            continue
        try:
            checked = CheckedRanges(symbol.exchange.slug, symbol.code, tf)
            # A stream's gap is missing trades, not an empty venue: fetched even if checked.
            ranges, _ = plan(symbol, tf, pending.to_ms(row.start), pending.to_ms(row.end),
                             checked=None if row.source == PendingRange.Source.STREAM
                             else checked, clock_ms=clock_ms)
            for a, b in ranges:
                fetch_range(adapter, symbol, tf, a, b, report=report, clock_ms=clock_ms,
                            checked=checked, waiting=waiting,
                            on_done=lambda done, row=row: pending.advance(row, done),
                            should_stop=lambda: counter.count >= limit)
                if counter.count >= limit:
                    break
            else:
                pending.finish(row)
                report.pending_filled += 1
                if row.source == PendingRange.Source.STREAM:
                    report.gaps_reported += 1
                continue
            pending.release([row], "collect: request budget of this run spent; resumes next run")
        except BaseException as exc:
            pending.release([row], f"collect stopped: {type(exc).__name__}: {exc}")
            raise


# -- CSV import / export ----------------------------------------------------------------------


@dataclasses.dataclass
class ImportResult:
    rows: int
    inserted: int
    updated: int
    errors: list[CsvError]
    written: bool


def import_csv(symbol: Symbol, timeframe: str, source: str | bytes | IO, *,
               skip_invalid: bool = False) -> ImportResult:
    """Check every row of a candle CSV; store them only if all are valid (or, with
    ``skip_invalid``, store the valid ones). Errors name their line numbers."""
    rows, errors = parse_candles_csv(source, timeframe)
    if errors and not skip_invalid:
        return ImportResult(len(rows) + len(errors), 0, 0, errors, False)
    if not rows:
        return ImportResult(len(errors), 0, 0, errors, False)
    try:
        inserted, updated = upsert_candles(symbol.id, timeframe, rows)
    except InvalidCandles as exc:
        return ImportResult(len(rows), 0, 0, [*errors, CsvError(0, str(exc))], False)
    return ImportResult(len(rows) + len(errors), inserted, updated, errors, True)


def export_csv(symbol: Symbol, timeframe: str, file: IO[str], *, start_ms: int | None = None,
               end_ms: int | None = None, time_format: str = "iso") -> int:
    """Write stored candles (oldest first) as CSV; returns how many."""
    timeframe_ms(timeframe)
    qs = Candle.objects.filter(symbol=symbol, timeframe=timeframe).order_by("open_time")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if start_ms is not None:
        qs = qs.filter(open_time__gte=epoch + dt.timedelta(milliseconds=start_ms))
    if end_ms is not None:
        qs = qs.filter(open_time__lt=epoch + dt.timedelta(milliseconds=end_ms))
    fields = ("open_time", "open", "high", "low", "close", "volume", "quote_volume")

    def rows():
        for t, *rest in qs.values_list(*fields).iterator(chunk_size=5000):
            delta = t - epoch
            ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
            yield (ms, *rest)

    return write_candles_csv(rows(), file, time_format=time_format)
