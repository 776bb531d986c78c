"""Stored candles in bulk: upsert, load into numpy, last open time, gaps.

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

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Iterable
from itertools import chain

import numpy as np
from django.db import connections, transaction
from django.db.models import Max

from markets import sqlite_columns
from markets.models import Candle, Symbol
from markets.series import Candles
from markets.timeframes import TIMEFRAMES, timeframe_ms

__all__ = [
    "InvalidCandles",
    "find_gaps",
    "last_open_time_ms",
    "load_candles",
    "upsert_candles",
]

#: Rows per statement by database vendor. SQLite: rows of one multi-row ``INSERT ... VALUES``
#: (a statement's fixed costs, e.g. the CHECK constraint ``timeframe IN (...)`` list, are paid
#: per execution, so one row per execution costs about twice as much per row).
CHUNK = {"sqlite": 2_000, "postgresql": 50_000}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
log = logging.getLogger(__name__)
_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")


class InvalidCandles(ValueError):
    """Rows that must not be stored (nothing was written). Fix or drop them and retry."""


def _ms_to_datetime(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=int(ms))


def _datetime_to_ms(value: dt.datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# -- input -> checked numpy columns ---------------------------------------------------------


def _columns(rows: Iterable) -> dict[str, np.ndarray]:
    """Rows -> numpy columns. Rows are ``CandleRow``/``Bar``-like (attributes ``open_time_ms``,
    ``open``, ...) or plain sequences ``(open_time_ms, open, high, low, close, volume[, q])``."""
    rows = rows if isinstance(rows, list) else list(rows)
    fast = _columns_of_uniform_tuples(rows)
    if fast is not None:
        return fast
    if not all(isinstance(r, (tuple, list)) for r in rows):
        rows = [
            r if isinstance(r, (tuple, list)) else (
                r.open_time_ms, r.open, r.high, r.low, r.close, r.volume,
                getattr(r, "quote_volume", None),
            )
            for r in rows
        ]
    n = len(rows)
    times = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    values = np.array(
        [(r[1], r[2], r[3], r[4], r[5], r[6] if len(r) > 6 and r[6] is not None else np.nan)
         for r in rows],
        dtype=np.float64,
    ).reshape(n, 6)
    cols = {"open_time_ms": times}
    for i, name in enumerate(_COLUMNS):
        cols[name] = values[:, i]
    return cols


def _columns_of_uniform_tuples(rows: list) -> dict[str, np.ndarray] | None:
    """The common case in one pass: every row a tuple (``CandleRow``) of 6 or 7 numbers, no
    None, times exact as float64. None when that does not hold (the general path decides)."""
    if not rows or not all(issubclass(t, tuple) for t in set(map(type, rows))):
        return None
    widths = set(map(len, rows))
    if len(widths) != 1 or (width := widths.pop()) not in (6, 7):
        return None
    n = len(rows)
    try:
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=n * width)
    except (TypeError, ValueError):  # a None quote volume, or something not a number
        return None
    flat = flat.reshape(n, width)
    times_f = flat[:, 0]
    # Integral and below 2**53, so the float64 is the caller's int exactly.
    if not (np.abs(times_f) < 2.0**53).all() or (times_f != np.trunc(times_f)).any():
        return None
    cols = {"open_time_ms": times_f.astype(np.int64)}
    for i, name in enumerate(_COLUMNS[:5]):
        cols[name] = flat[:, 1 + i]
    cols["quote_volume"] = flat[:, 6] if width == 7 else np.full(n, np.nan)
    return cols


def _check(cols: dict[str, np.ndarray], timeframe: str) -> None:
    """Raise InvalidCandles naming the first bad rows; the database's own checks stay a net."""
    step = timeframe_ms(timeframe)
    t, o, h, lo, c, v, q = (cols[k] for k in ("open_time_ms", *_COLUMNS))
    problems = []
    checks = [
        (t % step != 0, f"open time not the start of a {timeframe} candle"),
        (~np.isfinite(o) | ~np.isfinite(h) | ~np.isfinite(lo) | ~np.isfinite(c)
         | ~np.isfinite(v), "a price or the volume is not a finite number"),
        (~(lo > 0), "low is not above zero"),
        (~(h >= np.maximum(o, c)), "high is below open or close"),
        (~(lo <= np.minimum(o, c)), "low is above open or close"),
        (~(v >= 0), "volume is negative"),
        (np.isinf(q) | (q < 0), "quote_volume is negative or infinite"),
    ]
    for bad, reason in checks:
        if bad.any():
            idx = np.flatnonzero(bad)
            first = ", ".join(
                _ms_to_datetime(t[i]).strftime("%Y-%m-%dT%H:%M:%SZ") for i in idx[:3]
            )
            problems.append(f"{len(idx)} row(s): {reason} (first: {first})")
    if problems:
        raise InvalidCandles("nothing stored; " + "; ".join(problems))


def _dedupe_last(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sort by open time; when an open time repeats, the last row given wins."""
    t = cols["open_time_ms"]
    # Stable sort of the reversed order puts the last occurrence of a time first.
    rev = np.argsort(t[::-1], kind="stable")
    order = (len(t) - 1 - rev)
    ts = t[order]
    keep = np.ones(len(ts), dtype=bool)
    keep[1:] = ts[1:] != ts[:-1]
    order = order[keep]
    return {k: a[order] for k, a in cols.items()}


# -- upsert --------------------------------------------------------------------------------


def upsert_candles(
    symbol_id: int,
    timeframe: str,
    rows: Iterable,
    *,
    chunk_size: int | None = None,
    using: str = "default",
) -> tuple[int, int]:
    """Insert or update closed candles of one symbol and timeframe; returns ``(inserted,
    updated)``.

    ``rows`` are CandleRow/Bar-like objects or sequences ``(open_time_ms, open, high, low,
    close, volume[, quote_volume])``. Every row is checked first (aligned open time, finite
    prices, ``0 < low <= open, close <= high``, volumes not negative); one bad row raises
    :class:`InvalidCandles` and nothing is written. An open time given twice is stored once
    (the last row wins) and counted once. An existing candle counts as updated even when its
    values are unchanged. Runs in one transaction, ``chunk_size`` rows per statement (default:
    2,000 on SQLite; on PostgreSQL 50,000, each chunk one COPY and one INSERT, unless no candle
    is stored yet between the first and last open time given: then one COPY of all rows).
    """
    timeframe_ms(timeframe)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    cols = _columns(rows)
    if len(cols["open_time_ms"]) == 0:
        return 0, 0
    _check(cols, timeframe)
    cols = _dedupe_last(cols)
    for name in _COLUMNS:
        # -0.0 -> 0.0 (IEEE: -0.0 + 0.0 is 0.0), as the ORM's drivers store it; all else as is.
        cols[name] = cols[name] + 0.0
    connection = connections[using]
    if connection.vendor == "postgresql":
        writer = _upsert_postgresql
    elif connection.vendor == "sqlite":
        writer = _upsert_sqlite
    else:
        raise NotImplementedError(
            f"upsert_candles supports SQLite and PostgreSQL, not {connection.vendor}"
        )
    if chunk_size is None:
        chunk_size = CHUNK[connection.vendor]
    with transaction.atomic(using=using):
        _hold_symbol(connection, symbol_id)
        return writer(connection, symbol_id, timeframe, cols, chunk_size)


def _hold_symbol(connection, symbol_id: int) -> None:
    """The candle table's reference to its symbol, checked here once per call rather than by
    the database once per row (``Candle.symbol`` has no database constraint; this function
    is its only writer). PostgreSQL: the symbol row is key-share locked to the end of the
    transaction, as the foreign-key trigger would lock it, so it cannot be deleted under the
    upsert; SQLite: the transaction holds the database's write lock already."""
    qn = connection.ops.quote_name
    sql = f"SELECT 1 FROM {qn(Symbol._meta.db_table)} WHERE {qn(Symbol._meta.pk.column)} = %s"
    if connection.vendor == "postgresql":
        sql += " FOR KEY SHARE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [symbol_id])
        if cursor.fetchone() is None:
            raise InvalidCandles(f"nothing stored; there is no symbol with id {symbol_id}")


def _table() -> tuple[str, dict[str, str]]:
    meta = Candle._meta
    names = ("symbol", "timeframe", "open_time", *_COLUMNS)
    return meta.db_table, {name: meta.get_field(name).column for name in names}


def _sqlite_times(connection, times_ms: np.ndarray) -> list[str]:
    """Open times as the text Django's SQLite backend stores for an aware datetime."""
    seconds = times_ms.astype("datetime64[ms]").astype("datetime64[s]")
    text = np.datetime_as_string(seconds)  # 'YYYY-MM-DDTHH:MM:SS' (4-byte characters)
    chars = text.view(np.uint32).reshape(len(text), text.dtype.itemsize // 4)
    if chars.shape[1] > 10 and (chars[:, 10] == ord("T")).all():
        chars[:, 10] = ord(" ")  # the ISO 'T' -> the space Django stores
    text = text.tolist()
    # Whole seconds only reach here (times are aligned to minutes), so the format is fixed;
    # still, prove it against Django's own adapter and fall back to it if it ever differs.
    adapt = connection.ops.adapt_datetimefield_value
    for i in {0, len(text) - 1}:
        if text[i] != adapt(_ms_to_datetime(times_ms[i])):
            return [adapt(_ms_to_datetime(ms)) for ms in times_ms.tolist()]
    return text


def _upsert_sqlite(connection, symbol_id, timeframe, cols, chunk_size) -> tuple[int, int]:
    """Multi-row ``INSERT ... VALUES (..), (..) ON CONFLICT DO UPDATE`` statements of
    ``chunk_size`` rows through the raw sqlite3 connection (inside Django's transaction).
    Counts: the candles stored in the input's time span before and after (the transaction
    holds SQLite's write lock, so only these rows can have been added)."""
    table, col = _table()
    qn = connection.ops.quote_name
    key = [qn(col["symbol"]), qn(col["timeframe"]), qn(col["open_time"])]
    values = [qn(col[c]) for c in _COLUMNS]
    width = 1 + len(values)  # open_time and the values; symbol and timeframe are ?1 and ?2
    raw = connection.connection  # the sqlite3 connection: no per-call query rewriting
    limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    chunk_size = max(1, min(chunk_size, (limit - 2) // width))

    def insert_sql(rows: int) -> str:
        groups = ", ".join(
            "(?1, ?2, " + ", ".join(f"?{3 + width * r + i}" for i in range(width)) + ")"
            for r in range(rows)
        )
        return (
            f"INSERT INTO {qn(table)} ({', '.join(key + values)}) VALUES {groups} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{v} = excluded.{v}" for v in values)
        )

    n = len(cols["open_time_ms"])
    times = _sqlite_times(connection, cols["open_time_ms"])
    table_rows = np.empty((n, width), dtype=object)
    table_rows[:, 0] = times
    for i, name in enumerate(_COLUMNS[:5]):
        table_rows[:, 1 + i] = cols[name]
    q = cols["quote_volume"]
    table_rows[:, width - 1] = q
    if (missing := np.isnan(q)).any():
        table_rows[missing, width - 1] = None
    count_sql = (
        f"SELECT count(*) FROM {qn(table)} WHERE {key[0]} = ? AND {key[1]} = ? "
        f"AND {key[2]} BETWEEN ? AND ?"
    )
    span = (symbol_id, timeframe, times[0], times[-1])
    cursor = raw.cursor()
    try:
        before = cursor.execute(count_sql, span).fetchone()[0]
        whole = n - n % chunk_size
        if whole:
            cursor.executemany(insert_sql(chunk_size), (
                [symbol_id, timeframe, *table_rows[start:start + chunk_size].ravel().tolist()]
                for start in range(0, whole, chunk_size)
            ))
        if whole < n:
            cursor.execute(insert_sql(n - whole),
                           [symbol_id, timeframe, *table_rows[whole:].ravel().tolist()])
        inserted = cursor.execute(count_sql, span).fetchone()[0] - before
    finally:
        cursor.close()
    return inserted, n - inserted


# PostgreSQL's binary COPY format: a fixed header, then per row a big-endian int16 field count
# and, per field, an int32 length and the value; an int16 -1 ends the data.
_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_HEADER = _PG_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"


def _pg_row_dtype(names: tuple[str, ...], first: str = ">i8") -> np.dtype:
    """One binary COPY row of 8-byte fields: the first ``first`` (bigint), the rest float8."""
    fields = [("count", ">i2")]
    for i, name in enumerate(names):
        fields += [(f"len_{name}", ">i4"), (name, first if i == 0 else ">f8")]
    return np.dtype(fields)


#: PostgreSQL's binary timestamptz: int64 microseconds since 2000-01-01 00:00 UTC.
_PG_EPOCH_US = 946_684_800_000_000
_PG_IN = _pg_row_dtype(("open_time", *_COLUMNS))
_PG_OUT = _pg_row_dtype(("open_time_ms", *_COLUMNS[:5]))
_PG_TIMES = _pg_row_dtype(("open_time_ms",))


def _pg_copy_in(cols: dict[str, np.ndarray], start: int, stop: int) -> bytes:
    """Rows ``start:stop`` as a binary COPY payload: the open time as a binary timestamptz
    (computed here, not per row in SQL), then the values. A missing quote_volume travels as
    NaN."""
    rows = np.empty(stop - start, dtype=_PG_IN)
    rows["count"] = 1 + len(_COLUMNS)
    rows["len_open_time"] = 8
    rows["open_time"] = cols["open_time_ms"][start:stop] * 1000 - _PG_EPOCH_US
    for name in _COLUMNS:
        rows[f"len_{name}"] = 8
        rows[name] = cols[name][start:stop]
    return _PG_HEADER + rows.tobytes() + _PG_TRAILER


def _pg_copy_out(data: bytes, dtype: np.dtype) -> np.ndarray:
    """Parse a binary COPY payload of rows of 8-byte fields laid out as ``dtype`` (no NULLs)."""
    if not data.startswith(_PG_SIGNATURE) or not data.endswith(_PG_TRAILER):
        raise RuntimeError("unexpected COPY BINARY payload from PostgreSQL")
    ext = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext : len(data) - 2]
    rows = np.frombuffer(body, dtype=dtype)
    lengths = [rows[name] for name in dtype.names if name.startswith("len_")]
    if (rows["count"] != len(lengths)).any() or any((x != 8).any() for x in lengths):
        raise RuntimeError("unexpected field layout in a COPY BINARY payload from PostgreSQL")
    return rows


#: Namespace of the candle writers' transaction-level advisory locks (the first int4 key is
#: this plus the timeframe's index, the second the symbol id): "CN" in the high bytes.
_PG_LOCK_NAMESPACE = 0x434E_0000


def _pg_candle_dtype(connection, timeframe: str, quote: bool) -> tuple[np.dtype, list[str]]:
    """One binary COPY row of the candle table itself: symbol, timeframe (text), open time,
    the values, and ``quote`` whether the quote volume is one of them (rows without it leave
    the column to its NULL default). Returns the row dtype and the column names in order."""
    _, col = _table()
    symbol_type = Candle._meta.get_field("symbol").db_type(connection)
    width = {"bigint": ">i8", "integer": ">i4"}.get(symbol_type)
    if width is None:  # a schema this writer was not built for: fail before writing anything
        raise NotImplementedError(f"candle symbol column of type {symbol_type!r}")
    names = _COLUMNS if quote else _COLUMNS[:5]
    fields = [
        ("count", ">i2"),
        ("len_symbol", ">i4"), ("symbol", width),
        ("len_timeframe", ">i4"), ("timeframe", f"S{len(timeframe.encode())}"),
        ("len_open_time", ">i4"), ("open_time", ">i8"),
    ]
    for name in names:
        fields += [(f"len_{name}", ">i4"), (name, ">f8")]
    return np.dtype(fields), [col[c] for c in ("symbol", "timeframe", "open_time", *names)]


def _pg_copy_candles(connection, cursor, symbol_id, timeframe, cols, quote: bool) -> None:
    """Binary COPY of ``cols`` (sorted, checked, no open time already stored) straight into
    the candle table: one statement, the server's batched heap inserts."""
    n = len(cols["open_time_ms"])
    if n == 0:
        return
    dtype, columns = _pg_candle_dtype(connection, timeframe, quote)
    rows = np.empty(n, dtype=dtype)
    rows["count"] = len(columns)
    rows["len_symbol"] = dtype["symbol"].itemsize
    rows["symbol"] = symbol_id
    rows["len_timeframe"] = dtype["timeframe"].itemsize
    rows["timeframe"] = timeframe.encode()
    rows["len_open_time"] = 8
    rows["open_time"] = cols["open_time_ms"] * 1000 - _PG_EPOCH_US
    for name in _COLUMNS if quote else _COLUMNS[:5]:
        rows[f"len_{name}"] = 8
        rows[name] = cols[name]
    qn = connection.ops.quote_name
    sql = (f"COPY {qn(Candle._meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
           "FROM STDIN (FORMAT BINARY)")
    body = memoryview(rows.view(np.uint8))
    del rows
    # Django's error classes (an IntegrityError on a duplicate), as for its own statements.
    with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        copy.write(_PG_HEADER)
        step = 1 << 20  # psycopg sends what it is given as one message; keep them moderate
        for start in range(0, len(body), step):
            copy.write(body[start:start + step])
        copy.write(_PG_TRAILER)


def _upsert_postgresql(connection, symbol_id, timeframe, cols, chunk_size) -> tuple[int, int]:
    """Candles into a span of time holding none yet: one binary COPY into the candle table.
    Otherwise :func:`_upsert_postgresql_existing` (``ON CONFLICT``) for every row.

    ``ON CONFLICT`` makes every row a speculative insertion (an index probe, a speculative
    heap tuple, a second WAL record to confirm it), about twice the cost of a plain insert of
    a new candle. So the candle writers of one symbol and timeframe take turns (a
    transaction-level advisory lock) and one index probe asks whether anything is stored
    between the first and the last open time given; when nothing is, no row can conflict
    and all of them go in by COPY (a backfill into an empty range, a first import). A writer
    that bypassed the lock and stored one of them meanwhile makes the COPY fail on the
    unique constraint (nothing is written), never a wrong count or a lost row."""
    table, col = _table()
    qn = connection.ops.quote_name
    times = cols["open_time_ms"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [
            _PG_LOCK_NAMESPACE + TIMEFRAMES.index(timeframe),
            # The second key is an int4: ids past 2**31 wrap (a shared lock, still correct).
            (symbol_id + 2**31) % 2**32 - 2**31,
        ])
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {qn(table)} WHERE {qn(col['symbol'])} = %s AND "
            f"{qn(col['timeframe'])} = %s AND {qn(col['open_time'])} BETWEEN %s AND %s)",
            [symbol_id, timeframe, _ms_to_datetime(times[0]), _ms_to_datetime(times[-1])],
        )
        if not cursor.fetchone()[0]:
            missing = np.isnan(cols["quote_volume"])
            if not missing.any():
                _pg_copy_candles(connection, cursor, symbol_id, timeframe, cols, quote=True)
            else:  # rows without a quote volume leave the column to its NULL default
                for quote, pick in ((True, ~missing), (False, missing)):
                    _pg_copy_candles(connection, cursor, symbol_id, timeframe,
                                     {k: a[pick] for k, a in cols.items()}, quote=quote)
            return len(times), 0
    return _upsert_postgresql_existing(connection, symbol_id, timeframe, cols, chunk_size)


def _upsert_postgresql_existing(connection, symbol_id, timeframe, cols, chunk_size
                                ) -> tuple[int, int]:
    """Per chunk: a binary COPY into a temporary table, then one ``INSERT ... SELECT ... ON
    CONFLICT DO UPDATE``. An existing candle whose stored values are already bit for bit the
    given ones is left alone (no new row version, no index entries; ``ON CONFLICT`` still
    locks it); it still counts as updated. Counts: rows the INSERT created (``xmax = 0``);
    every other row existed."""
    table, col = _table()
    qn = connection.ops.quote_name
    key = [qn(col["symbol"]), qn(col["timeframe"]), qn(col["open_time"])]
    values = [qn(col[c]) for c in _COLUMNS]
    staging = "tradesite_candle_staging"
    select_values = ", ".join(_COLUMNS[:5]) + ", NULLIF(quote_volume, 'NaN'::float8)"
    # float8send compares bits: a -0.0 stored earlier is replaced by 0.0 (= calls them equal).
    stored = ", ".join(f"float8send(stored.{v})" for v in values)
    given = ", ".join(f"float8send(excluded.{v})" for v in values)
    upsert = (
        f"WITH written AS (INSERT INTO {qn(table)} AS stored ({', '.join(key + values)}) "
        f"SELECT %s, %s, open_time, {select_values} FROM {staging} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{v} = excluded.{v}" for v in values)
        + f" WHERE ({stored}) IS DISTINCT FROM ({given})"
        # xmax is 0 on a freshly inserted row version and set on an updated one.
        + " RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FROM written WHERE inserted"
    )
    n = len(cols["open_time_ms"])
    inserted = 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (open_time timestamptz, "
            "open float8, high float8, low float8, close float8, volume float8, "
            "quote_volume float8) ON COMMIT DELETE ROWS"
        )
        raw = cursor.cursor  # the psycopg cursor, for COPY
        for start in range(0, n, chunk_size):
            cursor.execute(f"TRUNCATE {staging}")  # empty, unless an outer transaction
            payload = _pg_copy_in(cols, start, min(start + chunk_size, n))
            with raw.copy(f"COPY {staging} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
            cursor.execute(upsert, [symbol_id, timeframe])
            inserted += cursor.fetchone()[0]
    return inserted, n - inserted


# -- reading ----------------------------------------------------------------------------------


def _time_sql(connection, column: str) -> str:
    """SQL for a stored open time as int ms UTC."""
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM {column}) * 1000)::bigint"
    if connection.vendor == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]' UTC; candles have whole seconds (both forms
        # drop a fraction). unixepoch() (SQLite 3.38) costs less per row than strftime('%s'),
        # which runs on the raw cursor, so '%s' is not a placeholder.
        if sqlite3.sqlite_version_info >= (3, 38):
            return f"unixepoch({column}) * 1000"
        return f"CAST(strftime('%s', {column}) AS INTEGER) * 1000"
    raise NotImplementedError(f"no bulk reader for {connection.vendor}")


#: One fetched SQLite row as numpy reads it from the cursor's tuples.
_SQLITE_ROWS = np.dtype([("open_time_ms", np.int64), *((c, np.float64) for c in _COLUMNS[:5])])
_SQLITE_TIMES = np.dtype([("open_time_ms", np.int64)])


def _split(rows, values: bool, descending: bool
           ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Fetched rows (a structured array, or columns by name) -> contiguous native columns,
    oldest first. At most one copy per column, so the peak is about twice the candles' own
    size, not more."""

    def column(name, dtype):  # a column already contiguous and native is taken as it is
        return np.ascontiguousarray(rows[name][::-1] if descending else rows[name], dtype=dtype)

    times = column("open_time_ms", np.int64)
    if not values:
        return times, None
    return times, {name: column(name, np.float64) for name in _COLUMNS[:5]}


def _fetch(
    connection, symbol_id, timeframe, start_ms, end_ms, *, values: bool,
    descending: bool = False, limit: int | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """One query: open times (int64 ms) and, with ``values``, float64 columns open, high,
    low, close, volume, oldest first (``descending``: the query reads newest first, e.g. for
    a ``limit`` of the newest, and the result is turned back to oldest first)."""
    table, col = _table()
    qn = connection.ops.quote_name
    key_time = qn(col["open_time"])
    value_columns = [qn(col[c]) for c in _COLUMNS[:5]] if values else []
    pg = connection.vendor == "postgresql"
    # PostgreSQL: COPY ... TO STDOUT takes no parameters, so every value is inlined, and every
    # one is an int or a known timeframe name (checked by the caller), so nothing can inject.
    if pg:
        def bound(ms):
            return f"timestamptz 'epoch' + {int(ms)} * interval '1 millisecond'"
        where = f"{qn(col['symbol'])} = {int(symbol_id)} AND {qn(col['timeframe'])} = " \
                f"'{timeframe}'"
        params: list = []
    else:
        adapt = connection.ops.adapt_datetimefield_value

        def bound(ms):
            params.append(adapt(_ms_to_datetime(ms)))
            return "?"
        params = [symbol_id, timeframe]
        where = f"{qn(col['symbol'])} = ? AND {qn(col['timeframe'])} = ?"
    if start_ms is not None:
        where += f" AND {key_time} >= {bound(start_ms)}"
    if end_ms is not None:
        where += f" AND {key_time} < {bound(end_ms)}"

    def query(time_column: str) -> str:
        sql = (
            f"SELECT {', '.join([time_column, *value_columns])} FROM {qn(table)} "
            f"WHERE {where} ORDER BY {key_time} {'DESC' if descending else 'ASC'}"
        )
        return sql if limit is None else f"{sql} LIMIT {int(limit)}"

    if not pg:
        connection.ensure_connection()
        if _c_reader_fits(connection, limit):
            try:  # the C reader parses the stored time text itself (no unixepoch() per row)
                return _fetch_sqlite_c(connection, table, key_time, value_columns, where,
                                       query(key_time), params, descending=descending,
                                       limit=limit)
            except sqlite_columns.ReadError as exc:  # the sqlite3 module reads (or reports)
                log.warning("candles read through sqlite3: the C reader failed: %s", exc)
        # The raw sqlite3 cursor, consumed straight into numpy: no list of row tuples (one
        # year of 1m candles would be ~150 MB of them) and no Django query rewriting.
        cursor = connection.connection.cursor()
        try:
            rows = np.fromiter(cursor.execute(query(_time_sql(connection, key_time)), params),
                               dtype=_SQLITE_ROWS if values else _SQLITE_TIMES)
        finally:
            cursor.close()
        return _split(rows, values, descending)
    with connection.cursor() as cursor:
        if pg:
            blocks = []
            sql = query(_time_sql(connection, key_time))
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as copy:
                while block := copy.read():
                    blocks.append(bytes(block))
            payload = b"".join(blocks)
            del blocks
            return _split(_pg_copy_out(payload, _PG_OUT if values else _PG_TIMES), values,
                          descending)


#: Reads of fewer rows than this (a ``limit``) keep to Django's connection: opening a second
#: one costs more than it saves.
C_READER_MIN_ROWS = 20_000


def _c_reader_fits(connection, limit: int | None) -> bool:
    """Whether the C reader (its own read-only connection) sees what Django's connection sees:
    the module is built and shares Python's SQLite, the database is a file, and Django's
    connection has no transaction open (whose uncommitted rows another connection cannot
    see). And the read is large enough to be worth a second connection."""
    if not sqlite_columns.AVAILABLE:
        return False
    if limit is not None and limit < C_READER_MIN_ROWS:
        return False
    if connection.is_in_memory_db():
        return False
    return (not connection.in_atomic_block and connection.get_autocommit()
            and not connection.connection.in_transaction)


def _fetch_sqlite_c(connection, table, key_time, value_columns, where, sql, params, *,
                    descending: bool, limit: int | None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """``_fetch``'s SQLite read through the C reader: the same rows (the open time as stored,
    parsed by the reader), written straight into numpy arrays, oldest first. The arrays are
    sized by the first and last stored open time (a count only when times are off the
    timeframe's step); an ascending read without a limit goes through the reader's
    ``tradesite_collect`` aggregate (see :func:`markets.sqlite_columns.read_columns`)."""
    settings = connection.settings_dict
    options = settings.get("OPTIONS", {})
    symbol_id, timeframe, *_bounds = params
    source = f"FROM {connection.ops.quote_name(table)} WHERE {where}"
    times, columns = sqlite_columns.read_columns(
        str(settings["NAME"]), uri=bool(options.get("uri")),
        timeout_s=float(options.get("timeout", 5)),
        count_sql=f"SELECT count(*) {source}",
        # one statement each: SQLite answers a lone min() or max() from the index, both
        # together by a scan
        span_sql=(f"SELECT min({key_time}) {source}", f"SELECT max({key_time}) {source}"),
        step=timeframe_ms(timeframe),
        collect_sql=None if descending or limit is not None else (
            f"SELECT tradesite_collect({', '.join([key_time, *value_columns])}) {source}"),
        sql=sql, symbol_id=int(symbol_id), texts=[str(t) for t in params[1:]], limit=limit,
        descending=descending, nvalues=len(value_columns),
    )
    if not value_columns:
        return times, None
    return times, dict(zip(_COLUMNS[:5], columns, strict=True))


def load_candles(
    symbol_id: int,
    timeframe: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
    *,
    using: str = "default",
) -> Candles:
    """Stored candles with ``start_ms <= open time < end_ms``, oldest first, as numpy arrays.

    With ``limit`` and no ``start_ms`` these are the newest ``limit`` candles (before
    ``end_ms``), which is what a strategy's lookback needs; with ``start_ms`` as well, the
    oldest ``limit`` from ``start_ms``. One snapshot of the table (SQLite: the C reader's read
    transaction, or one query's fetched rows; PostgreSQL: one binary COPY parsed by numpy).
    """
    timeframe_ms(timeframe)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    newest = limit is not None and start_ms is None
    times, values = _fetch(
        connections[using], symbol_id, timeframe, start_ms, end_ms,
        values=True, descending=newest, limit=limit,
    )
    return Candles(open_time_ms=times, **values)


def last_open_time_ms(symbol_id: int, timeframe: str, *, using: str = "default") -> int | None:
    """Open time (ms) of the newest stored candle, or None when there is none."""
    newest = (
        Candle.objects.using(using)
        .filter(symbol_id=symbol_id, timeframe=timeframe)
        .aggregate(newest=Max("open_time"))["newest"]
    )
    return None if newest is None else _datetime_to_ms(newest)


def find_gaps(
    symbol_id: int, timeframe: str, start_ms: int, end_ms: int, *, using: str = "default"
) -> list[tuple[int, int]]:
    """Missing candles in ``[start_ms, end_ms)`` as half-open ranges ``(first_missing_ms,
    next_present_or_end_ms)``, oldest first.

    Only aligned open times count: ``start_ms`` is rounded up to the next candle start. A
    range's end is the open time of the next stored candle, or the first aligned time at or
    after ``end_ms``. One query reading only the open times; grouped in numpy.
    """
    step = timeframe_ms(timeframe)
    first = -(-start_ms // step) * step
    last = -(-end_ms // step) * step  # first aligned time not wanted
    if first >= last:
        return []
    present, _ = _fetch(connections[using], symbol_id, timeframe, first, last, values=False)
    present = present[present % step == 0]  # an unaligned stray never hides a gap
    # Sentinels just outside the range turn leading and trailing gaps into inner ones.
    marks = np.concatenate(([first - step], present, [last]))
    jumps = np.flatnonzero(np.diff(marks) > step)
    return [(int(marks[i] + step), int(marks[i + 1])) for i in jumps]
