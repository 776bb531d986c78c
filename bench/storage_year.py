"""Storage at market scale with a whole year per symbol (issue 20): the time of a chart's first
paint and of the screener at 500 symbols × 525,600 1m candles each (and their 1h candles), on
SQLite. Opt-in, not in ``make bench``: it writes a ~31 GB scratch file (``--folder``, default
the system's temporary folder) and takes about a quarter of an hour.

``python -m bench.storage_year [--symbols 500] [--folder DIR]``

How the year gets there. The first symbol's year is written through the product's store
(``markets.candles.upsert_candles``, 1m and 1h) and the chart is timed on it alone (the
baseline: one symbol, a year, a fresh table). The other symbols' years are copied from it in
SQL, one ``INSERT ... SELECT`` per symbol with the prices scaled by a per-symbol factor: the
same rows per symbol and the same (symbol, timeframe, open_time) index the store builds, written
in a few minutes instead of the store's ~45 (its insert rate is `bench storage`'s row; how
collection's interleaved writes grow the file is `bench storage`'s bytes-per-row row). Then the
same requests as :mod:`bench.storage_chart` at 500 symbols × a year, the first paint in
Chromium, and the screener (``strategies.screening.screen_exchange``, each symbol's last day).

The file is larger than this machine's memory, so the page cache holds only part of it: a
symbol the sample picks may be read from disk, as on a server with that much history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import storage_chart
from bench.bench_storage import MINUTE, T0, YEAR_ROWS, _candles, _setup_django, _size
from bench.common import percentile, row


def run(symbols: int = 500, folder: str | None = None) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-storage-year-", dir=folder) as scratch:
        path = _setup_django(scratch)
        from django.db import connection

        from markets.candles import upsert_candles
        from markets.candles.columns import COLUMNS, table
        from markets.models import Candle, Exchange, Symbol
        from strategies.screening import screen_exchange

        exchange = Exchange.objects.create(slug="year", name="Year", adapter="binance_spot",
                                           rest_url="http://127.0.0.1:1",
                                           ws_url="ws://127.0.0.1:1")
        browser = storage_chart.client()
        first = Symbol.objects.create(exchange=exchange, code="A000USDT", base="A000",
                                      quote="USDT")
        year = _candles(YEAR_ROWS, 0)
        started = time.perf_counter()
        upsert_candles(first.pk, "1m", year)
        upsert_candles(first.pk, "1h", storage_chart.hourly(year))
        store_s = time.perf_counter() - started
        one = storage_chart.measure(browser, exchange.slug, [first.code])
        paint_one = storage_chart.browser_first_paint(exchange.slug, [first.code])

        Symbol.objects.bulk_create(
            Symbol(exchange=exchange, code=f"A{i:03d}USDT", base=f"A{i:03d}", quote="USDT")
            for i in range(1, symbols))
        others = list(Symbol.objects.filter(exchange=exchange).exclude(pk=first.pk)
                      .order_by("code"))
        name, col = table()
        qn = connection.ops.quote_name
        key = [qn(col["symbol"]), qn(col["timeframe"]), qn(col["open_time"])]
        prices = [qn(col[c]) for c in COLUMNS[:4]]
        rest = [qn(col[c]) for c in COLUMNS[4:]]
        copy = (f"INSERT INTO {qn(name)} ({', '.join(key + prices + rest)}) "
                f"SELECT %s, {key[1]}, {key[2]}, "
                + ", ".join(f"{p} * %s" for p in prices) + ", " + ", ".join(rest)
                + f" FROM {qn(name)} WHERE {key[0]} = %s")
        started = time.perf_counter()
        for i, symbol in enumerate(others, start=1):
            factor = 1 + i / 100
            with connection.cursor() as cursor:
                cursor.execute(copy, [symbol.pk, factor, factor, factor, factor, first.pk])
        copy_s = time.perf_counter() - started
        rows = Candle.objects.count()
        size = _size(path)

        many = storage_chart.measure(browser, exchange.slug,
                                     [first.code, *(s.code for s in others)])
        paint_many = storage_chart.browser_first_paint(
            exchange.slug, [first.code, *(s.code for s in others)])
        admin_ms = _admin_lists(others[len(others) // 2].code)
        now = dt.datetime.fromtimestamp((T0 + YEAR_ROWS * MINUTE) / 1000, dt.UTC)
        started = time.perf_counter()
        ranked = screen_exchange(exchange, now=now)
        screen_s = time.perf_counter() - started
        started = time.perf_counter()
        screen_exchange(exchange, now=now)
        screen_again_s = time.perf_counter() - started
        if len(ranked) != symbols:
            raise AssertionError(f"the screener ranked {len(ranked)} of {symbols} symbols")

    out = [
        row(f"SQLite: {symbols} symbols x 1 year, 1m and 1h rows stored", rows, "rows", None,
            None, digits=0),
        row("SQLite: file size (after a WAL checkpoint)", size / 1e9, "GB", None, None,
            digits=2),
        row("SQLite: bytes per row, written per symbol (the store's own rows)", size / rows,
            "B", None, None, digits=1),
        row("first symbol's year through upsert_candles (1m + 1h)", store_s, "s", None, None,
            digits=1),
        row(f"the other {symbols - 1} symbols copied in SQL", copy_s, "s", None, None,
            digits=1),
    ]
    for name in storage_chart.REQUESTS:
        what = ("chart page (first paint)" if name.startswith("page") else
                "/api/candles limit 1000") + f", {name[-2:]}"
        for pct in (50, 99):
            out.append(row(f"SQLite {what}, {symbols} symbols x 1 year: p{pct} "
                           f"({storage_chart.SAMPLE} symbols)", percentile(many[name], pct),
                           "ms", "1 symbol x 1 year (fresh table)",
                           percentile(one[name], pct), digits=2, ratio_digits=2))
    if isinstance(paint_many, str) or isinstance(paint_one, str):
        why = paint_many if isinstance(paint_many, str) else paint_one
        out.append(row(f"SQLite browser first paint: not measured ({why})", None, "ms", None,
                       None))
    else:
        out += [row(f"SQLite browser first paint (Chromium), chart 1m, {symbols} symbols x 1 "
                    f"year: p{pct} ({len(paint_many)} symbols)", percentile(paint_many, pct),
                    "ms", "1 symbol x 1 year (fresh table)", percentile(paint_one, pct),
                    digits=1, ratio_digits=2) for pct in (50, 99)]
    out += [row(f"admin Candles list, {what}, {symbols} symbols x 1 year (server time, best of "
                f"3)", ms, "ms", None, None, digits=1) for what, ms in admin_ms.items()]
    out += [
        row(f"SQLite screener, {symbols} symbols x 1 year (first run: inserts the figures)",
            screen_s, "s", None, None, digits=3),
        row(f"SQLite screener, {symbols} symbols x 1 year (again: updates the figures)",
            screen_again_s, "s", None, None, digits=3),
    ]
    return out


def _admin_lists(code: str) -> dict[str, float]:
    """Server time of the admin's candle list (a superuser): the first page, one timeframe, one
    symbol searched; best of 3 after one untimed request each."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    root = get_user_model().objects.create_superuser("bench-root", password="bench-root-pw-1")
    client = Client()
    client.force_login(root)
    out = {}
    for what, query in (("first page", ""), ("one timeframe (1h)", "?timeframe__exact=1h"),
                        (f"one symbol searched ({code})", f"?q={code}")):
        path = "/admin/markets/candle/" + query
        times = []
        for i in range(4):
            started = time.perf_counter()
            if client.get(path).status_code != 200:
                raise AssertionError(f"{path} did not answer 200")
            if i:
                times.append((time.perf_counter() - started) * 1000)
        out[what] = min(times)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storage_year", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--folder", default=None,
                        help="where the ~31 GB scratch file goes (default: the temp folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    from bench.__main__ import fmt

    for r in run(args.symbols, args.folder):
        base = (f"   [{r['baseline']}: {fmt(r['baseline_value'])}, ratio {fmt(r['ratio'])}]"
                if r.get("baseline") else "")
        print(f"{r['name']}: {fmt(r['value'])} {r['unit']}{base}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
