"""Stored candles in bulk: upsert, load into numpy, last open time, gaps.

A package: :mod:`~markets.candles.store` (the public functions, re-exported here),
:mod:`~markets.candles.columns` (rows -> checked numpy columns, shared by every backend) and
:mod:`~markets.candles.backends` (one backend per database vendor: ``sqlite`` and
``postgresql``).

The hot paths skip the ORM's per-object work and talk to the database inside Django's
transaction with vendor-specific SQL (SQLite, on the raw sqlite3 connection: multi-row
``INSERT ... VALUES ... ON CONFLICT DO UPDATE`` statements; PostgreSQL, under a lock per
symbol and timeframe: candles into an empty span of time by one binary ``COPY`` built by numpy
straight into the table, others by a binary ``COPY`` into a temporary table and an ``INSERT
... SELECT ... ON CONFLICT`` that leaves bit-identical candles alone). They store exactly what the
ORM stores (checked against the ORM in the tests) and read straight into numpy (SQLite: the C
reader of :mod:`markets.sqlite_columns` writing the columns into numpy arrays in one read
transaction on its own read-only connection when that sees what Django's connection sees, else
one query on the raw cursor consumed by ``np.fromiter``; PostgreSQL: a binary ``COPY ... TO
STDOUT`` parsed by numpy). Times in and out are int ms UTC; prices and volumes are floats; a
missing quote volume is None on the way in and NULL in the table.
"""

from markets.candles.columns import InvalidCandles
from markets.candles.store import find_gaps, last_open_time_ms, load_candles, upsert_candles

__all__ = [
    "InvalidCandles",
    "find_gaps",
    "last_open_time_ms",
    "load_candles",
    "upsert_candles",
]
