"""``manage.py export_candles``: stored candles as CSV (re-importable bit for bit)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from markets.backfill import parse_timeframes, resolve_symbols
from markets.collect import export_csv
from markets.csvio import parse_open_time


class Command(BaseCommand):
    help = "Export stored candles of one symbol and timeframe as CSV (to a file or stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--venue", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True)
        parser.add_argument("--output", "-o", default="-", help="file path (default: stdout)")
        parser.add_argument("--start", default=None, help="ISO-8601 or epoch ms (inclusive)")
        parser.add_argument("--end", default=None, help="ISO-8601 or epoch ms (exclusive)")
        parser.add_argument("--time-format", choices=("iso", "ms"), default="iso")

    def handle(self, *args, **o):
        try:
            (symbol,) = resolve_symbols(o["venue"], [o["symbol"]])
            (timeframe,) = parse_timeframes(o["timeframe"])
            start = parse_open_time(o["start"]) if o["start"] else None
            end = parse_open_time(o["end"]) if o["end"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        kwargs = dict(start_ms=start, end_ms=end, time_format=o["time_format"])
        if o["output"] == "-":
            export_csv(symbol, timeframe, self.stdout, **kwargs)
            return
        try:
            with open(o["output"], "w", newline="", encoding="utf-8") as handle:
                count = export_csv(symbol, timeframe, handle, **kwargs)
        except OSError as exc:
            raise CommandError(f"cannot write {o['output']}: {exc.strerror or exc}") from exc
        self.stderr.write(f"wrote {count} candle(s) to {o['output']}")
