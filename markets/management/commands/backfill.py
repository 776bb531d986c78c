"""``manage.py backfill``: a thin shell over :func:`markets.backfill.backfill`."""

from __future__ import annotations

import contextlib
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from markets import backfill as service
from markets.csvio import parse_open_time
from markets.exchanges.errors import ExchangeError


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM (a supervisor stopping the job) ends the run like Ctrl-C: chunks kept, the
    unfinished range released to the collector with the reason."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(BaseCommand):
    help = (
        "Fetch missing closed candles from a venue's REST API (resumable, idempotent, "
        "fills gaps). Without --days/--start: the last BACKFILL_DEFAULT_DAYS (300) days."
    )

    def add_arguments(self, parser):
        parser.add_argument("--venue", help="venue slug, e.g. sim or upbit")
        parser.add_argument("--symbol", default="", help="symbol code(s): KRW-BTC[,KRW-ETH]")
        parser.add_argument(
            "--timeframe", default=None,
            help="timeframe(s): 1m[,5m,...] (default: each symbol's own timeframes)",
        )
        parser.add_argument("--all-active", action="store_true",
                            help="every active symbol (of --venue, if given)")
        parser.add_argument("--days", type=float, default=None, help="days back from --end/now")
        parser.add_argument("--start", default=None,
                            help="start: ISO-8601 with Z/offset or epoch ms")
        parser.add_argument("--end", default=None, help="end (exclusive; default now)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **o):
        try:
            symbols = service.resolve_symbols(o["venue"], o["symbol"].split(","), o["all_active"])
            timeframes = service.parse_timeframes(o["timeframe"])
            start = parse_open_time(o["start"]) if o["start"] else None
            end = parse_open_time(o["end"]) if o["end"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if start is not None and o["days"] is not None:
            raise CommandError("use either --days or --start, not both")
        if not symbols:
            raise CommandError("no active symbols to backfill")
        report = service.BackfillReport()
        progress = False if o["no_progress"] else None
        try:
            with sigterm_interrupts():
                service.backfill(symbols, timeframes, start_ms=start, end_ms=end,
                                 days=o["days"], progress=progress, report=report,
                                 out=self.stdout._out)
        except KeyboardInterrupt:
            self.stdout.write(self.style.WARNING(
                "interrupted; every chunk written so far is kept and the rest is recorded: "
                "collect_candles fills it, or run again to continue now"))
        except ExchangeError as exc:
            raise CommandError(
                f"{exc}" if "recorded" in str(exc) else
                f"{exc}. Every chunk written so far is kept and the rest is recorded: "
                f"collect_candles fills it, or run again to continue") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            self.stdout.write(report.summary())
            for example in report.dropped.examples:
                self.stdout.write(self.style.WARNING(f"dropped malformed candle {example}"))
        for error in report.errors:
            self.stderr.write(error)
