"""``manage.py import_candles FILE``: check every row, store all or nothing (or skip bad rows)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from markets.backfill import parse_timeframes, resolve_symbols
from markets.collect import import_csv

MAX_SHOWN = 20


class Command(BaseCommand):
    help = (
        "Import closed candles from a CSV file (open_time,open,high,low,close,volume"
        "[,quote_volume]). Nothing is written if any row is bad, unless --skip-invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file path, or - for standard input")
        parser.add_argument("--venue", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True)
        parser.add_argument("--skip-invalid", action="store_true",
                            help="store the valid rows and report the bad ones")

    def handle(self, *args, **o):
        try:
            (symbol,) = resolve_symbols(o["venue"], [o["symbol"]])
            (timeframe,) = parse_timeframes(o["timeframe"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            if o["file"] == "-":
                import sys

                result = import_csv(symbol, timeframe, sys.stdin.buffer,
                                    skip_invalid=o["skip_invalid"])
            else:
                # Binary: the parser decodes line by line, so a line that is not UTF-8 is a
                # message naming it rather than an exception somewhere in the file.
                with open(o["file"], "rb") as handle:
                    result = import_csv(symbol, timeframe, handle,
                                        skip_invalid=o["skip_invalid"])
        except OSError as exc:
            raise CommandError(f"cannot read {o['file']}: {exc.strerror or exc}") from exc
        for error in result.errors[:MAX_SHOWN]:
            self.stderr.write(str(error))
        if len(result.errors) > MAX_SHOWN:
            self.stderr.write(f"... and {len(result.errors) - MAX_SHOWN} more bad line(s)")
        if result.errors and not result.written:
            raise CommandError(
                f"{len(result.errors)} bad line(s); nothing was imported. Fix them, or pass "
                "--skip-invalid to import the valid rows only."
            )
        self.stdout.write(
            f"{symbol} {timeframe}: imported {result.inserted + result.updated} candle(s) "
            f"(inserted {result.inserted}, updated {result.updated}); "
            f"skipped {len(result.errors)} bad line(s)"
        )
