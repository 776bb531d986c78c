"""Market-data benchmarks: bar aggregation and CSV candles.

``run()`` returns rows ``{name, value, unit, baseline, baseline_value, ratio}`` (ratio = value /
baseline_value; higher is better for every row here). ``python bench/bench_marketdata.py``
prints them as a table. Each figure is the best of a few repeats (wall clock), so it is less
noisy on a shared machine, not free of noise.

Goal (issue 4): the aggregator takes >= 200,000 trades/s across all 8 timeframes on one core.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from markets.aggregator import BarAggregator
from markets.csvio import CandleRow, parse_candles_csv, write_candles_csv
from markets.timeframes import TIMEFRAME_MS, TIMEFRAMES

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
GOAL_TRADES_PER_S = 200_000
UPSERT_REPEATS = 2
LOAD_REPEATS = 3  # a load is short, so one more repeat costs little and steadies the figure


@dataclasses.dataclass(frozen=True, slots=True)
class Trade:
    """Same attributes as markets.exchanges.base.Trade (not imported: another engineer's)."""

    symbol: str
    trade_id: str
    ts_ms: int
    price: float
    quantity: float
    side: str


def make_trades(n: int, n_symbols: int = 4, seed: int = 7) -> list[Trade]:
    """A random walk per symbol, about 3 trades a second each, a few out of order in time."""
    rnd = random.Random(seed)
    symbols = [f"SYM{i}USDT" for i in range(n_symbols)]
    price = dict.fromkeys(symbols, 100.0)
    ts = dict.fromkeys(symbols, T0)
    trades = []
    for i in range(n):
        s = symbols[i % n_symbols]
        ts[s] += rnd.randint(0, 600)
        jitter = rnd.randint(-200, 0) if rnd.random() < 0.05 else 0  # a little lateness
        price[s] = max(0.01, price[s] * (1 + rnd.gauss(0, 0.0005)))
        trades.append(Trade(s, str(i), max(T0, ts[s] + jitter), price[s], rnd.random(), "buy"))
    return trades


def best_of(repeats: int, fn) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def aggregate_with_aggregator(trades, timeframes=TIMEFRAMES) -> int:
    agg = BarAggregator(timeframes=timeframes)
    add = agg.add
    closed = 0
    for t in trades:
        out = add(t)
        if out:
            closed += len(out)
    return closed + len(agg.flush().forming)


def aggregate_with_dicts(trades, timeframes=TIMEFRAMES) -> int:
    """Baseline: the obvious loop, one dict entry per (symbol, timeframe, bucket), updated for
    every timeframe on every trade (open/close by arrival, no late/duplicate handling)."""
    steps = [(tf, TIMEFRAME_MS[tf]) for tf in timeframes]
    bars: dict[tuple, list] = {}
    for t in trades:
        for tf, step in steps:
            key = (t.symbol, tf, t.ts_ms - t.ts_ms % step)
            bar = bars.get(key)
            if bar is None:
                bars[key] = [t.price, t.price, t.price, t.price, t.quantity,
                             t.price * t.quantity, 1]
            else:
                if t.price > bar[1]:
                    bar[1] = t.price
                if t.price < bar[2]:
                    bar[2] = t.price
                bar[3] = t.price
                bar[4] += t.quantity
                bar[5] += t.price * t.quantity
                bar[6] += 1
    return len(bars)


def make_candles(n: int, seed: int = 3) -> list[CandleRow]:
    rnd = random.Random(seed)
    rows = []
    close = 100.0
    for i in range(n):
        o = close
        close = max(0.01, o * (1 + rnd.gauss(0, 0.001)))
        hi = max(o, close) * (1 + rnd.random() * 0.001)
        lo = min(o, close) * (1 - rnd.random() * 0.001)
        v = rnd.random() * 10
        rows.append(CandleRow(T0 + i * 60_000, o, hi, lo, close, v, v * close))
    return rows


def plain_csv_parse(text: str) -> int:
    """Baseline: csv.reader + float() with no checks at all."""
    import csv

    reader = csv.reader(io.StringIO(text))
    next(reader)
    n = 0
    for f in reader:
        (int(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[4]), float(f[5]),
         float(f[6]))
        n += 1
    return n


def row(name, value, unit, baseline, baseline_value) -> dict:
    return {
        "name": name,
        "value": round(value, 1),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value, 1),
        "ratio": round(value / baseline_value, 2) if baseline_value else None,
    }


def run(
    n_trades: int = 300_000, n_candles: int = 100_000, repeats: int = 3,
    n_stored: int | None = 525_600,
) -> list[dict]:
    """All rows; ``n_stored=None`` skips the database rows (they need Django settings)."""
    trades = make_trades(n_trades)
    rows = []

    t_all = best_of(repeats, lambda: aggregate_with_aggregator(trades))
    t_dict = best_of(repeats, lambda: aggregate_with_dicts(trades))
    t_one = best_of(repeats, lambda: aggregate_with_dicts(trades, ["1m"]))
    rows.append(row("aggregator: trades through 8 timeframes", n_trades / t_all, "trades/s",
                    "plain dict loop, 8 timeframes", n_trades / t_dict))
    rows.append(row("aggregator: trades through 8 timeframes", n_trades / t_all, "trades/s",
                    "plain dict loop, 1m only", n_trades / t_one))

    candles = make_candles(n_candles)
    buf = io.StringIO()
    write_candles_csv(candles, buf, time_format="ms")
    text = buf.getvalue()
    t_parse = best_of(repeats, lambda: parse_candles_csv(text, "1m"))
    t_plain = best_of(repeats, lambda: plain_csv_parse(text))
    rows.append(row("csv: parse and check candles (epoch ms)", n_candles / t_parse, "rows/s",
                    "csv.reader + float(), no checks", n_candles / t_plain))

    def write_plain():
        import csv

        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["open_time", "open", "high", "low", "close", "volume", "quote_volume"])
        w.writerows(candles)

    t_write = best_of(repeats, lambda: write_candles_csv(candles, io.StringIO()))
    t_wplain = best_of(repeats, write_plain)
    rows.append(row("csv: write candles (ISO-8601 Z)", n_candles / t_write, "rows/s",
                    "csv.writer, epoch ms", n_candles / t_wplain))
    if n_stored:
        rows += database_rows(n_stored)
    return rows


# -- stored candles (Django) -------------------------------------------------------------------

CANDLE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")


def _django():
    """Set Django up with the project's settings (as ``make bench`` does); None if impossible."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    try:
        import django

        django.setup()
    except Exception as exc:  # no settings module in this checkout: no database rows
        print(f"bench_marketdata: no Django ({type(exc).__name__}: {exc}); "
              "skipping the database rows", file=sys.stderr)
        return None
    return django


def _scratch_database(alias: str, overrides: dict) -> None:
    """A private database beside the configured one, holding just the candle tables."""
    from django.db import connections

    from markets.models import Candle, Exchange, Symbol

    settings = dict(connections.settings["default"])
    settings.update(overrides)
    connections.settings[alias] = settings
    with connections[alias].schema_editor() as editor:
        for model in (Exchange, Symbol, Candle):
            editor.create_model(model)


def _scratch_symbol(alias: str) -> int:
    from markets.models import Exchange, Symbol

    exchange = Exchange.objects.using(alias).create(
        slug="bench", name="Bench", adapter="upbit", rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
    )
    return Symbol.objects.using(alias).create(
        exchange=exchange, code="KRW-BENCH", base="BENCH", quote="KRW"
    ).id


def _plain_sqlite_upsert(alias: str, symbol_id: int, params: list[tuple]) -> None:
    """Baseline: one executemany INSERT ... ON CONFLICT DO UPDATE of ready-made parameters."""
    from django.db import connections, transaction

    from markets.models import Candle

    meta = Candle._meta
    cols = ["symbol_id", "timeframe", "open_time", *CANDLE_COLUMNS]
    sql = (
        f'INSERT INTO "{meta.db_table}" ({", ".join(cols)}) VALUES ({", ".join("?" * 9)}) '
        "ON CONFLICT (symbol_id, timeframe, open_time) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in CANDLE_COLUMNS)
    )
    connection = connections[alias]
    with transaction.atomic(using=alias):
        connection.connection.executemany(sql, params)


def _plain_postgresql_upsert(alias: str, symbol_id: int, text: str) -> None:
    """Baseline: COPY a ready-made buffer into a temp table, one INSERT ... SELECT ON CONFLICT."""
    from django.db import connections, transaction

    from markets.models import Candle

    table = Candle._meta.db_table
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_plain (t bigint, open float8, high float8, low float8,"
            " close float8, volume float8, quote_volume float8) ON COMMIT DROP"
        )
        with cursor.cursor.copy("COPY bench_plain FROM STDIN") as copy:
            copy.write(text)
        cursor.execute(
            f"INSERT INTO {table} (symbol_id, timeframe, open_time, {', '.join(CANDLE_COLUMNS)}) "
            f"SELECT %s, '1m', timestamptz 'epoch' + t * interval '1 millisecond', "
            f"{', '.join(CANDLE_COLUMNS)} FROM bench_plain "
            "ON CONFLICT (symbol_id, timeframe, open_time) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in CANDLE_COLUMNS),
            [symbol_id],
        )


def _plain_fetch(alias: str, symbol_id: int) -> int:
    """Baseline for loading: the same rows with a plain fetchall, no numpy."""
    from django.db import connections

    from markets.models import Candle

    with connections[alias].cursor() as cursor:
        cursor.execute(
            f"SELECT open_time, open, high, low, close, volume FROM {Candle._meta.db_table} "
            "WHERE symbol_id = %s AND timeframe = %s ORDER BY open_time",
            [symbol_id, "1m"],
        )
        return len(cursor.fetchall())


def _db_rows(label: str, alias: str, n: int, candles: list[CandleRow]) -> list[dict]:
    from django.db import connections

    from markets.candles import load_candles, upsert_candles
    from markets.models import Candle

    symbol_id = _scratch_symbol(alias)
    vendor = connections[alias].vendor

    def clear():
        Candle.objects.using(alias).filter(symbol_id=symbol_id).delete()

    if vendor == "sqlite":
        from markets.candles.backends.sqlite import sqlite_times as _sqlite_times

        times = _sqlite_times(connections[alias], np.array([c[0] for c in candles]))
        params = [(symbol_id, "1m", t, *c[1:]) for t, c in zip(times, candles)]
        plain = lambda: _plain_sqlite_upsert(alias, symbol_id, params)  # noqa: E731
        plain_name = "plain raw sqlite3 executemany INSERT ON CONFLICT"
    else:
        text = "".join(
            f"{c[0]}\t{c[1]!r}\t{c[2]!r}\t{c[3]!r}\t{c[4]!r}\t{c[5]!r}\t{c[6]!r}\n"
            for c in candles
        )
        plain = lambda: _plain_postgresql_upsert(alias, symbol_id, text)  # noqa: E731
        plain_name = "plain COPY + INSERT SELECT ON CONFLICT"

    def ours(rows=candles):
        return upsert_candles(symbol_id, "1m", rows, using=alias)

    # The same candles with every volume changed: no row of the second write is a no-op.
    changed = [c._replace(volume=c.volume + 1.0) for c in candles]

    # Insert into an emptied table, then write every row again; ours and the plain baseline
    # take turns from the same emptied state, best of UPSERT_REPEATS each (a shared machine).
    t_insert = t_update = t_changed = t_plain_insert = t_plain_update = float("inf")
    for _ in range(UPSERT_REPEATS):
        clear()
        start = time.perf_counter()
        counts = ours()
        t_insert = min(t_insert, time.perf_counter() - start)
        assert counts == (n, 0), counts
        start = time.perf_counter()
        counts = ours()
        t_update = min(t_update, time.perf_counter() - start)
        assert counts == (0, n), counts
        start = time.perf_counter()
        counts = ours(changed)
        t_changed = min(t_changed, time.perf_counter() - start)
        assert counts == (0, n), counts
        clear()
        start = time.perf_counter()
        plain()
        t_plain_insert = min(t_plain_insert, time.perf_counter() - start)
        start = time.perf_counter()
        plain()
        t_plain_update = min(t_plain_update, time.perf_counter() - start)
    clear()
    ours()

    t_load = t_fetch = float("inf")
    for _ in range(LOAD_REPEATS):
        start = time.perf_counter()
        loaded = load_candles(symbol_id, "1m", using=alias)
        t_load = min(t_load, time.perf_counter() - start)
        assert len(loaded) == n
        del loaded
        start = time.perf_counter()
        _plain_fetch(alias, symbol_id)
        t_fetch = min(t_fetch, time.perf_counter() - start)

    clear()
    return [
        row(f"{label}: upsert_candles, {n:,} new 1m candles", n / t_insert, "rows/s",
            plain_name, n / t_plain_insert),
        row(f"{label}: upsert_candles, {n:,} existing 1m candles, same values", n / t_update,
            "rows/s", plain_name, n / t_plain_update),
        row(f"{label}: upsert_candles, {n:,} existing 1m candles, every volume changed",
            n / t_changed, "rows/s", plain_name, n / t_plain_update),
        row(f"{label}: load_candles, {n:,} 1m candles into numpy (took {t_load:.2f} s)",
            n / t_load, "rows/s", f"plain fetchall of the same rows ({t_fetch:.2f} s)",
            n / t_fetch),
    ]


VENDORS = ("sqlite", "postgresql")


def database_rows(n: int = 525_600, vendors: tuple[str, ...] = VENDORS) -> list[dict]:
    """Upsert and load one year of 1m candles on SQLite (a scratch file) and, when pgserver is
    installed, on a scratch PostgreSQL. Baselines run in the same process on the same data.
    ``vendors`` picks which of the two run."""
    if _django() is None:
        return []
    candles = make_candles(n)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-marketdata-") as tmp:
        if "sqlite" in vendors:
            _scratch_database("bench_sqlite", {
                "ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(tmp) / "bench.sqlite3"),
            })
            rows += _db_rows("sqlite", "bench_sqlite", n, candles)
        if "postgresql" not in vendors:
            return rows
        try:
            import pgserver
        except ImportError:
            print("bench_marketdata: pgserver not installed; no PostgreSQL rows", file=sys.stderr)
            return rows
        server = pgserver.get_server(str(Path(tmp) / "pg"), cleanup_mode="stop")
        try:
            host = server.get_uri().split("host=", 1)[1]
            _scratch_database("bench_pg", {
                "ENGINE": "django.db.backends.postgresql", "NAME": "postgres",
                "USER": "postgres", "PASSWORD": "", "HOST": host, "PORT": "", "OPTIONS": {},
            })
            rows += _db_rows("postgresql", "bench_pg", n, candles)
        finally:
            from django.db import connections

            connections["bench_pg"].close()
            server.cleanup()
    return rows


def print_table(rows: list[dict]) -> None:
    cols = ["name", "value", "unit", "baseline", "baseline_value", "ratio"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


def main(argv: list[str]) -> int:
    """``python bench/bench_marketdata.py``: every row; ``--db sqlite`` or ``--db postgresql``:
    only the database rows of that vendor (one at a time, under the bench lock)."""
    if argv[:1] == ["--db"] and len(argv) == 2 and argv[1] in VENDORS:
        print_table(database_rows(vendors=(argv[1],)))
        return 0
    if argv:
        print(f"usage: bench_marketdata.py [--db {'|'.join(VENDORS)}]", file=sys.stderr)
        return 2
    results = run()
    print_table(results)
    rate = results[0]["value"]
    verdict = "meets" if rate >= GOAL_TRADES_PER_S else "MISSES"
    print(f"\naggregator {verdict} the goal of {GOAL_TRADES_PER_S:,} trades/s: {rate:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
