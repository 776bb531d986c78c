"""Keeping stored candles current: the periodic collection (``markets.tasks.collect_candles``),
the gaps the stream reports, and CSV import/export.

Collection: for every active symbol and timeframe, fetch only what is newer than the newest
stored candle (a symbol with nothing stored gets its last ``COLLECT_INITIAL_CANDLES`` (200)
candles; history is the backfill's job), plus the ranges the stream could not fill itself
(Redis set ``tradesite:stream:gaps``). A missed run catches up on the next. A venue that cannot
be reached is logged once per run and skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import IO

from django.conf import settings

from markets import heartbeat
from markets.backfill import BackfillReport, RequestCounter, adapter_for, fetch_range, now_ms
from markets.candles import InvalidCandles, last_open_time_ms, upsert_candles
from markets.csvio import CsvError, parse_candles_csv, write_candles_csv
from markets.exchanges.base import ExchangeAdapter
from markets.exchanges.errors import ExchangeError
from markets.models import Candle, Exchange, Symbol
from markets.timeframes import floor_ms, timeframe_ms

log = logging.getLogger(__name__)

DEFAULT_INITIAL_CANDLES = 200


def gaps_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}stream:gaps"


def report_gap(venue: str, symbol: str, timeframe: str, start_ms: int, end_ms: int,
               client=None) -> None:
    """Ask the next collection run to fetch ``[start_ms, end_ms)`` (the stream could not)."""
    if end_ms > start_ms:
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
    """One collection run over every active exchange with active symbols."""
    clock_ms = clock_ms or now_ms
    adapter_factory = adapter_factory or adapter_for
    report = CollectReport()
    initial = int(getattr(settings, "COLLECT_INITIAL_CANDLES", DEFAULT_INITIAL_CANDLES))
    gaps = reported_gaps()
    symbols = list(Symbol.objects.active().select_related("exchange").order_by(
        "exchange__slug", "code"))
    by_venue: dict[int, list[Symbol]] = {}
    for s in symbols:
        by_venue.setdefault(s.exchange_id, []).append(s)
    for venue_symbols in by_venue.values():
        exchange = venue_symbols[0].exchange
        adapter = adapter_factory(exchange)
        counter = RequestCounter().attach(adapter)
        try:
            for symbol in venue_symbols:
                for tf in symbol.timeframes:
                    if tf not in adapter.capabilities.timeframes:
                        continue
                    step = timeframe_ms(tf)
                    end = floor_ms(clock_ms(), tf)
                    last = last_open_time_ms(symbol.id, tf)
                    start = last + step if last is not None else end - initial * step
                    fetch_range(adapter, symbol, tf, start, end, report=report,
                                clock_ms=clock_ms)
                    report.series += 1
                    for member, a, b in gaps.get((exchange.slug, symbol.code, tf), []):
                        fetch_range(adapter, symbol, tf, a, b, report=report, clock_ms=clock_ms)
                        report.gaps_reported += 1
                        heartbeat.client().srem(gaps_key(), member)
        except ExchangeError as exc:
            # Logged once per run; the next run (a minute later) tries again from the store.
            log.warning("collect: %s unreachable, skipped this run: %s", exchange.slug, exc)
            report.venues_skipped.append(exchange.slug)
        finally:
            report.requests += counter.count
            adapter.close()
    return report


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
