"""Stored-candle benchmarks for ``bench_marketdata``: ``upsert_candles`` and ``load_candles`` on
one year of 1m candles, on a scratch SQLite file and (with pgserver) a scratch PostgreSQL, each
against a plain baseline in the same process on the same data."""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import rate_row, scratch_symbol
from markets.csvio import CandleRow

UPSERT_REPEATS = 2
LOAD_REPEATS = 3  # a load is short, so one more repeat costs little and steadies the figure

CANDLE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def make_candles(n: int, seed: int = 3) -> list[CandleRow]:
    """``n`` 1m candles from ``T0``, a seeded random walk (``bench_marketdata`` uses it too:
    here, so the two modules do not import each other)."""
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

    symbol_id = scratch_symbol(alias)
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
        rate_row(f"{label}: upsert_candles, {n:,} new 1m candles", n / t_insert, "rows/s",
            plain_name, n / t_plain_insert),
        rate_row(f"{label}: upsert_candles, {n:,} existing 1m candles, same values", n / t_update,
            "rows/s", plain_name, n / t_plain_update),
        rate_row(f"{label}: upsert_candles, {n:,} existing 1m candles, every volume changed",
            n / t_changed, "rows/s", plain_name, n / t_plain_update),
        rate_row(f"{label}: load_candles, {n:,} 1m candles into numpy (took {t_load:.2f} s)",
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
