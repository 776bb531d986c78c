"""Storage at market scale (issue 20): rows and bytes per symbol-year of 1m candles on SQLite,
extrapolated from a measured sample, the screener's time at 500 symbols, and a chart's first
paint at 500 symbols.

A scratch SQLite file (migrated here) gets ``SYMBOLS`` symbols × ``DAYS`` days of 1m candles
(and their 1h candles, as the stream stores both) through ``markets.candles.upsert_candles``,
day by day as collection fills the table; the file's growth (after a WAL checkpoint) over the
rows inserted gives bytes per row (table and indexes), × 525,600 rows per symbol-year. The
screener (``strategies.screening.screen_exchange``: loads each symbol's last day, figures, rank,
stores the figures) then runs over them; its baseline is the pure part alone (figures and rank
on the same candles already in memory), so the ratio is what the database adds.
The screener reads one day per symbol; :mod:`bench.storage_year` times it with a whole year
per symbol.

The chart (:mod:`bench.storage_chart`): the server time of the chart page (its first paint's
one request) and of ``/api/candles`` (limit 1,000), 1m and 1h, over 50 random symbols at 500
symbols × 2 days, beside the same requests with 1 symbol stored (a fresh table, measured first
in the same run) and at 500 symbols × 1 day; and the first paint in Chromium (Playwright,
``/usr/bin/chromium``) through the real web server at 1 and at 500 symbols. A whole year per
symbol (a 31 GB file) is :mod:`bench.storage_year`, opt-in (``python -m bench.storage_year``).
``python -m bench storage``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import storage_chart
from bench.common import row

SYMBOLS = int(os.environ.get("BENCH_STORAGE_SYMBOLS", "500"))
DAYS = 2
MINUTE = 60_000
YEAR_ROWS = 525_600
T0 = 1_767_225_600_000  # 2026-01-01


def _setup_django(folder: str) -> Path:
    """A scratch SQLite file; or, under ``devservices with-postgres`` (a private, throwaway
    server) with ``BENCH_STORAGE_POSTGRES=1``, that PostgreSQL."""
    path = Path(folder) / "bench.sqlite3"
    on_postgres = os.environ.get("BENCH_STORAGE_POSTGRES") == "1"
    if not (on_postgres and os.environ.get("DATABASE_URL", "").startswith("postgres")):
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return path


def _size(path: Path) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size('markets_candle')")
            return cursor.fetchone()[0]
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA freelist_count")
        free = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        return (pages - free) * cursor.fetchone()[0]


def _candles(n: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(opens, close) * (1 + rng.random(n) * 0.001)
    low = np.minimum(opens, close) * (1 - rng.random(n) * 0.001)
    vol = rng.random(n) * 10
    return [(T0 + i * MINUTE, o, h, lo, c, v) for i, (o, h, lo, c, v) in
            enumerate(zip(opens.tolist(), high.tolist(), low.tolist(), close.tolist(),
                          vol.tolist(), strict=True))]


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as folder:
        path = _setup_django(folder)
        from django.db import connection

        from markets.candles import load_candles, upsert_candles
        from markets.models import Candle, Exchange, Symbol
        from strategies import screener
        from strategies.screening import screen_exchange

        db = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"

        exchange = Exchange.objects.create(slug="store", name="Store", adapter="binance_spot",
                                           rest_url="http://127.0.0.1:1",
                                           ws_url="ws://127.0.0.1:1")
        minutes = DAYS * 1440
        day = 1440
        # The chart's baseline: one symbol stored (a fresh table, a one-entry symbol picker).
        browser = storage_chart.client()
        Symbol.objects.create(exchange=exchange, code="A000USDT", base="A000", quote="USDT")
        first = _candles(minutes, 0)
        upsert_candles(Symbol.objects.get(code="A000USDT").pk, "1m", first)
        upsert_candles(Symbol.objects.get(code="A000USDT").pk, "1h", storage_chart.hourly(first))
        chart_one = storage_chart.measure(browser, exchange.slug, ["A000USDT"])
        paint_one = storage_chart.browser_first_paint(exchange.slug, ["A000USDT"])
        Symbol.objects.bulk_create(
            Symbol(exchange=exchange, code=f"A{i:03d}USDT", base=f"A{i:03d}", quote="USDT")
            for i in range(1, SYMBOLS))
        symbols = list(Symbol.objects.filter(exchange=exchange).order_by("code"))
        codes = [s.code for s in symbols]
        rows0 = Candle.objects.count()
        before = _size(path)
        # Day by day, as collection fills the table (each symbol's newer rows after its older
        # ones), with the 1h candles beside them; the chart is timed after each day.
        insert_s = 0.0
        for part in range(DAYS):
            started = time.perf_counter()
            for i, symbol in enumerate(symbols[1:], start=1):
                sample = _candles(minutes, i)[part * day:(part + 1) * day]
                upsert_candles(symbol.pk, "1m", sample)
                upsert_candles(symbol.pk, "1h", storage_chart.hourly(sample))
            insert_s += time.perf_counter() - started
            if part == 0:
                chart_day = storage_chart.measure(browser, exchange.slug, codes)
        grown = _size(path) - before
        rows = Candle.objects.count() - rows0
        per_row = grown / rows
        chart_two = storage_chart.measure(browser, exchange.slug, codes)
        paint_two = storage_chart.browser_first_paint(exchange.slug, codes)
        now = dt.datetime.fromtimestamp((T0 + minutes * MINUTE) / 1000, dt.UTC)

        started = time.perf_counter()
        ranked = screen_exchange(exchange, now=now)
        screen_s = time.perf_counter() - started
        started = time.perf_counter()
        screen_again_s = None
        screen_exchange(exchange, now=now)  # second run: updates instead of inserts
        screen_again_s = time.perf_counter() - started

        end_ms = T0 + minutes * MINUTE
        loaded = {s.code: load_candles(s.pk, "1m", end_ms - 86_400_000 - 16 * MINUTE, end_ms)
                  for s in symbols}
        started = time.perf_counter()
        screener.rank({code: screener.figures(c, MINUTE) for code, c in loaded.items()})
        pure_s = time.perf_counter() - started
        if len(ranked) != SYMBOLS:
            raise AssertionError(f"the screener ranked {len(ranked)} of {SYMBOLS} symbols")
        return [
            row(f"{db} candles: bytes per row ({rows:,} 1m and 1h rows sampled, table + indexes)",
                per_row, "B", None, None, digits=1),
            row(f"{db} 1m candles: per symbol-year (525,600 rows)", per_row * YEAR_ROWS / 1e6,
                "MB", None, None, digits=1),
            row(f"{db}: {SYMBOLS} symbols x 1 year of 1m candles", per_row * YEAR_ROWS *
                SYMBOLS / 1e9, "GB", None, None, digits=2),
            row(f"{db}: insert rate of the sample", rows / insert_s, "rows/s", None, None,
                digits=0),
            row(f"{db} screener, {SYMBOLS} symbols (first run: inserts the figures)", screen_s, "s",
                "figures + rank alone (candles in memory)", pure_s, digits=3, ratio_digits=1),
            row(f"{db} screener, {SYMBOLS} symbols (again: updates the figures)", screen_again_s,
                "s", "figures + rank alone (candles in memory)", pure_s, digits=3,
                ratio_digits=1),
            *storage_chart.rows(db, SYMBOLS, chart_one, chart_day, chart_two),
            *storage_chart.paint_rows(db, SYMBOLS, paint_one, paint_two),
        ]


if __name__ == "__main__":
    for r in run():
        print(r)
