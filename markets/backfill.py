"""Backfill stored candles from a venue's REST API: resumable, idempotent, gap-aware.

:func:`backfill` fetches, for each symbol and timeframe, only the candles missing from
``[start, end)``: before the first stored candle, inside the stored range (gaps) and after the
last. It pages through the adapter in chunks of one request (``max_candles_per_request``
candles), oldest first, under the venue's shared Redis rate limiter, and upserts each chunk in
its own transaction, so Ctrl-C keeps every chunk already written.

Empty intervals: Upbit-protocol venues (Upbit, Bithumb, the simulator) have no candle for a
minute without trades, so a missing candle may be legitimately missing. Every range fetched is
remembered as *checked* in Redis (``tradesite:backfill:checked:<venue>:<symbol>:<tf>``, merged
intervals); a later run subtracts the checked ranges, so an empty gap is fetched once, not on
every run. Only closed time is ever marked checked. Losing Redis costs one refetch of the
empty gaps, never a wrong candle.

Refusals: a 429 or 418 is a reason to wait, never to stop (:mod:`markets.patience`: each wait
as long as the venue's ``Retry-After``, through the shared limiter), until the venue has refused
for ``BACKFILL_MAX_REFUSED_S`` (900 s) in a row. Unfinished work: before its first request a
backfill records each series' range as a :class:`~markets.models.PendingRange` and shrinks it
after every chunk stored, so whatever stops it leaves its unfinished range recorded, and
``collect_candles`` fills it (:mod:`markets.pending`).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterable

from django.conf import settings

from markets import pending
from markets.adapters import adapter_for
from markets.candle_contract import DroppedCandles, collecting
from markets.candles import find_gaps, upsert_candles
from markets.checked import CheckedRanges, subtract
from markets.exchanges.base import ExchangeAdapter
from markets.models import Exchange, PendingRange, Symbol
from markets.patience import Patience
from markets.timeframes import TIMEFRAMES, floor_ms, timeframe_ms

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
DEFAULT_DAYS = 300
#: Seconds a backfill waits out a venue refusing every request (429/418) before it stops.
DEFAULT_MAX_REFUSED_S = 900.0
#: A candle counts as closed this long after its end (the venue's REST may lag its trades).
CLOSED_GRACE_MS = 2_000


def default_days() -> int:
    """Days a symbol without candles is backfilled (setting ``BACKFILL_DEFAULT_DAYS``)."""
    return int(getattr(settings, "BACKFILL_DEFAULT_DAYS", DEFAULT_DAYS))


def patience(setting: str = "BACKFILL_MAX_REFUSED_S", default: float = DEFAULT_MAX_REFUSED_S,
             **kwargs) -> Patience:
    """A :class:`Patience` bounded by ``setting`` (seconds of refusals in a row)."""
    return Patience(float(getattr(settings, setting, default)), limit_name=setting, **kwargs)


def now_ms() -> int:
    return int(time.time() * 1000)


class RequestCounter:
    """Counts HTTP responses an adapter receives (a ``requests`` response hook)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response, *args, **kwargs):
        self.count += 1
        return response

    def attach(self, adapter: ExchangeAdapter) -> RequestCounter:
        session = getattr(getattr(adapter, "http", None), "session", None)
        if session is not None and self not in session.hooks["response"]:
            session.hooks["response"].append(self)
        return self


# -- fetching ---------------------------------------------------------------------------------


@dataclasses.dataclass
class BackfillReport:
    """What a backfill (or a collection run) did. Mutated as it goes, so an interrupted run
    still reports what it wrote."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    gaps_empty: int = 0
    requests: int = 0
    chunks: int = 0
    elapsed_s: float = 0.0
    series: int = 0
    refusals: int = 0  # 429/418 answers waited out
    refused_wait_s: float = 0.0
    failures: int = 0  # 5xx, unavailable and timeouts retried
    failed_wait_s: float = 0.0
    pending_filled: int = 0  # recorded unfinished ranges completed
    errors: list[str] = dataclasses.field(default_factory=list)
    #: Venue rows that break the candle contract: dropped, counted and logged, never stored.
    dropped: DroppedCandles = dataclasses.field(default_factory=DroppedCandles)

    def summary(self) -> str:
        waited = (f"; waited {self.refused_wait_s:.1f}s on {self.refusals} refusal(s) (429/418)"
                  if self.refusals else "")
        if self.failures:
            waited += (f"; retried {self.failures} failed request(s) (5xx, unavailable, "
                       f"timeout) after {self.failed_wait_s:.1f}s of waiting")
        if self.dropped.total:
            waited += f"; {self.dropped.summary()}"
        return (
            f"fetched {self.fetched} candles, inserted {self.inserted}, updated {self.updated}; "
            f"gaps found {self.gaps_found}, filled {self.gaps_filled}, "
            f"empty at the venue {self.gaps_empty}; {self.requests} requests in "
            f"{self.elapsed_s:.1f}s over {self.series} symbol/timeframe pair(s){waited}"
        )

    def add_patience(self, waiting: Patience) -> None:
        self.refusals += waiting.refusals
        self.refused_wait_s += waiting.waited_s
        self.failures += waiting.failures
        self.failed_wait_s += waiting.failed_wait_s


def chunks(start_ms: int, end_ms: int, step: int, per_request: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into pieces one request can serve, oldest first."""
    width = step * per_request
    out = []
    a = start_ms
    while a < end_ms:
        b = min(a + width, end_ms)
        out.append((a, b))
        a = b
    return out


def fetch_range(
    adapter: ExchangeAdapter,
    symbol: Symbol,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    report: BackfillReport,
    clock_ms: Callable[[], int] = now_ms,
    checked: CheckedRanges | None = None,
    on_chunk: Callable[[int], None] | None = None,
    waiting: Patience | None = None,
    on_done: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Fetch ``[start_ms, end_ms)`` of closed candles chunk by chunk, upserting each chunk in its
    own transaction; returns the number of candles fetched. Marks each chunk checked.

    ``waiting`` waits out 429/418 (default: raise them). ``on_done(end_ms)`` runs after each
    chunk is stored; ``should_stop()`` is asked before each request (a bounded run)."""
    step = timeframe_ms(timeframe)
    start_ms = -(-start_ms // step) * step
    closed_end = floor_ms(clock_ms() - CLOSED_GRACE_MS, timeframe)
    end_ms = min(end_ms, closed_end)
    per_request = adapter.capabilities.max_candles_per_request
    total = 0
    for a, b in chunks(start_ms, end_ms, step, per_request):
        if should_stop is not None and should_stop():
            break
        # A malformed venue row is dropped, counted and logged where it enters (the adapter's
        # parser; the store for what a parser cannot see): never a reason to stop.
        label = {"venue": symbol.exchange.slug, "symbol": symbol.code}
        with collecting(report.dropped, timeframe=timeframe, **label):
            if waiting is not None:
                rows = waiting.call(adapter.fetch_candles, symbol.code, timeframe, a, b,
                                    venue=symbol.exchange.slug)
            else:
                rows = adapter.fetch_candles(symbol.code, timeframe, a, b)
        rows = [r for r in rows if a <= r.open_time_ms < b]
        if rows:
            inserted, updated = upsert_candles(symbol.id, timeframe, rows,
                                               dropped=report.dropped, **label)
            report.inserted += inserted
            report.updated += updated
        report.fetched += len(rows)
        report.chunks += 1
        total += len(rows)
        if checked is not None:
            checked.add(a, b)
        if on_chunk is not None:
            on_chunk((b - a) // step)
        if on_done is not None:
            on_done(b)
    return total


def plan(
    symbol: Symbol,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    checked: CheckedRanges | None,
    clock_ms: Callable[[], int] = now_ms,
) -> tuple[list[tuple[int, int]], int]:
    """Ranges to fetch (missing and not yet checked) and how many of them are inner gaps."""
    end_ms = min(end_ms, floor_ms(clock_ms() - CLOSED_GRACE_MS, timeframe))
    if end_ms <= start_ms:
        return [], 0
    missing = find_gaps(symbol.id, timeframe, start_ms, end_ms)
    if checked is not None:
        missing = subtract(missing, checked.get())
    step = timeframe_ms(timeframe)
    first = -(-start_ms // step) * step
    last = -(-end_ms // step) * step
    inner = sum(1 for a, b in missing if a > first and b < last)
    return missing, inner


def resolve_symbols(venue: str | None, codes: Iterable[str] = (), all_active: bool = False
                    ) -> list[Symbol]:
    """Symbols named on a command line, with a clear error for an unknown venue or code."""
    if all_active:
        qs = Symbol.objects.active().select_related("exchange")
        if venue:
            qs = qs.filter(exchange__slug=venue)
        return list(qs)
    if not venue:
        raise ValueError("name the venue (--venue SLUG) or use --all-active")
    exchange = Exchange.objects.filter(slug=venue).first()
    if exchange is None:
        known = ", ".join(Exchange.objects.values_list("slug", flat=True)) or "none"
        raise ValueError(f"unknown venue {venue!r}; known venues: {known}")
    codes = [c.strip() for c in codes if c.strip()]
    if not codes:
        raise ValueError("name at least one symbol (--symbol KRW-BTC[,KRW-ETH])")
    found = {s.code: s for s in Symbol.objects.filter(exchange=exchange, code__in=codes)
             .select_related("exchange")}
    missing = [c for c in codes if c not in found]
    if missing:
        raise ValueError(f"unknown symbol(s) at {venue}: {', '.join(missing)}")
    return [found[c] for c in codes]


def parse_timeframes(text: str | Iterable[str] | None) -> list[str] | None:
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [t.strip() for t in items if t.strip()]
    bad = [t for t in items if t not in TIMEFRAMES]
    if bad:
        raise ValueError(f"unknown timeframe(s) {', '.join(bad)}; use {', '.join(TIMEFRAMES)}")
    return items


def backfill(
    symbols: Iterable[Symbol],
    timeframes: Iterable[str] | None = None,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    days: float | None = None,
    clock_ms: Callable[[], int] | None = None,
    adapter_factory: Callable[[Exchange], ExchangeAdapter] | None = None,
    progress: bool | None = None,
    report: BackfillReport | None = None,
    out=None,
    waiting: Patience | None = None,
) -> BackfillReport:
    """Fill ``[start, end)`` for each symbol and timeframe with what the venue has and the
    database lacks. ``timeframes`` defaults to each symbol's own list. Without ``start_ms`` and
    ``days`` the range is the last :func:`default_days` days. ``end_ms`` defaults to now
    (only closed candles are fetched). ``progress`` shows a tqdm bar (default: when ``out``
    is a terminal). Returns (and fills as it goes) a :class:`BackfillReport`.

    Each series' range is recorded before the first request and shrunk as chunks are stored
    (:mod:`markets.pending`); an exception or interrupt releases what is left to the collector,
    with the reason. ``waiting``: how 429/418 are waited out (default :func:`patience`)."""
    report = report if report is not None else BackfillReport()
    clock_ms = clock_ms or now_ms
    adapter_factory = adapter_factory or adapter_for
    started = time.monotonic()
    out = out if out is not None else sys.stderr
    now = clock_ms()
    end = now if end_ms is None else end_ms
    if start_ms is None:
        span_days = default_days() if days is None else days
        start = end - int(span_days * DAY_MS)
    else:
        start = start_ms
    if start >= end:
        raise ValueError("the start must be before the end")
    symbols = list(symbols)
    wanted = list(timeframes) if timeframes is not None else None

    work = []
    for symbol in symbols:
        for tf in (wanted or symbol.timeframes):
            checked = CheckedRanges(symbol.exchange.slug, symbol.code, tf)
            ranges, inner = plan(symbol, tf, start, end, checked=checked, clock_ms=clock_ms)
            report.gaps_found += inner
            report.series += 1
            work.append((symbol, tf, ranges, inner, checked))
    # Written ahead, before any request: a job killed at any point leaves its range here.
    rows: dict[tuple[int, str], PendingRange] = {
        (symbol.id, tf): pending.open_range(symbol, tf, ranges[0][0], ranges[-1][1])
        for symbol, tf, ranges, _, _ in work if ranges
    }
    current: list[PendingRange] = []

    def renew_current(wait_s: float) -> None:
        for row in current:
            pending.renew(row, wait_s)

    if waiting is None:
        waiting = patience(on_wait=renew_current)

    total_slots = sum((b - a) // timeframe_ms(tf) for _, tf, ranges, _, _ in work
                      for a, b in ranges)
    show = progress if progress is not None else bool(getattr(out, "isatty", lambda: False)())
    bar = None
    if show and total_slots:
        from tqdm import tqdm

        bar = tqdm(total=total_slots, unit="candle", file=out, dynamic_ncols=True)
    adapters: dict[int, tuple[ExchangeAdapter, RequestCounter]] = {}
    try:
        for symbol, tf, ranges, _inner, checked in work:
            if not ranges:
                continue
            row = rows[(symbol.id, tf)]
            current[:] = [row]
            exchange = symbol.exchange
            if exchange.id not in adapters:
                adapter = adapter_factory(exchange)
                adapters[exchange.id] = (adapter, RequestCounter().attach(adapter))
            adapter, _ = adapters[exchange.id]
            if tf not in adapter.capabilities.timeframes:
                why = adapter.capabilities.unsupported_timeframes.get(tf, "not offered")
                report.errors.append(f"{exchange.slug}:{symbol.code} {tf}: {why}")
                pending.finish(rows.pop((symbol.id, tf)))  # nobody can fill it
                continue
            step = timeframe_ms(tf)
            last = -(-min(end, floor_ms(now - CLOSED_GRACE_MS, tf)) // step) * step
            first = -(-start // step) * step
            if bar is not None:
                bar.set_description(f"{exchange.slug}:{symbol.code} {tf}")
            for a, b in ranges:
                got = fetch_range(adapter, symbol, tf, a, b, report=report, clock_ms=clock_ms,
                                  checked=checked,
                                  on_chunk=bar.update if bar is not None else None,
                                  waiting=waiting,
                                  on_done=lambda done, row=row: pending.advance(row, done))
                if a > first and b < last:
                    if got:
                        report.gaps_filled += 1
                    else:
                        report.gaps_empty += 1
            pending.finish(rows.pop((symbol.id, tf)))
    except BaseException as exc:
        # Exception, Ctrl-C or SIGTERM (the command turns it into KeyboardInterrupt): what is
        # left of each series goes to the collector now, with the reason.
        pending.release(rows.values(), f"backfill stopped: {type(exc).__name__}: {exc}")
        raise
    finally:
        report.add_patience(waiting)
        if bar is not None:
            bar.close()
        for adapter, counter in adapters.values():
            report.requests += counter.count
            adapter.close()
        report.elapsed_s = time.monotonic() - started
    return report
