"""PostgreSQL's binary ``COPY`` format for candles, built and parsed by numpy (the PostgreSQL
candle backend is its only user): a fixed header, then per row a big-endian int16 field count
and, per field, an int32 length and the value; an int16 -1 ends the data.
"""

from __future__ import annotations

import numpy as np

from markets.candles.columns import COLUMNS, table
from markets.models import Candle

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"


def row_dtype(names: tuple[str, ...], first: str = ">i8") -> np.dtype:
    """One binary COPY row of 8-byte fields: the first ``first`` (bigint), the rest float8."""
    fields = [("count", ">i2")]
    for i, name in enumerate(names):
        fields += [(f"len_{name}", ">i4"), (name, first if i == 0 else ">f8")]
    return np.dtype(fields)


#: PostgreSQL's binary timestamptz: int64 microseconds since 2000-01-01 00:00 UTC.
EPOCH_US = 946_684_800_000_000
IN = row_dtype(("open_time", *COLUMNS))
OUT = row_dtype(("open_time_ms", *COLUMNS[:5]))
TIMES = row_dtype(("open_time_ms",))


def copy_in(cols: dict[str, np.ndarray], start: int, stop: int) -> bytes:
    """Rows ``start:stop`` as a binary COPY payload: the open time as a binary timestamptz
    (computed here, not per row in SQL), then the values. A missing quote_volume travels as
    NaN."""
    rows = np.empty(stop - start, dtype=IN)
    rows["count"] = 1 + len(COLUMNS)
    rows["len_open_time"] = 8
    rows["open_time"] = cols["open_time_ms"][start:stop] * 1000 - EPOCH_US
    for name in COLUMNS:
        rows[f"len_{name}"] = 8
        rows[name] = cols[name][start:stop]
    return HEADER + rows.tobytes() + TRAILER


def copy_out(data: bytes, dtype: np.dtype) -> np.ndarray:
    """Parse a binary COPY payload of rows of 8-byte fields laid out as ``dtype`` (no NULLs)."""
    if not data.startswith(SIGNATURE) or not data.endswith(TRAILER):
        raise RuntimeError("unexpected COPY BINARY payload from PostgreSQL")
    ext = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext : len(data) - 2]
    rows = np.frombuffer(body, dtype=dtype)
    lengths = [rows[name] for name in dtype.names if name.startswith("len_")]
    if (rows["count"] != len(lengths)).any() or any((x != 8).any() for x in lengths):
        raise RuntimeError("unexpected field layout in a COPY BINARY payload from PostgreSQL")
    return rows


#: Namespace of the candle writers' transaction-level advisory locks (the first int4 key is

def candle_dtype(connection, timeframe: str, quote: bool) -> tuple[np.dtype, list[str]]:
    """One binary COPY row of the candle table itself: symbol, timeframe (text), open time,
    the values, and ``quote`` whether the quote volume is one of them (rows without it leave
    the column to its NULL default). Returns the row dtype and the column names in order."""
    _, col = table()
    symbol_type = Candle._meta.get_field("symbol").db_type(connection)
    width = {"bigint": ">i8", "integer": ">i4"}.get(symbol_type)
    if width is None:  # a schema this writer was not built for: fail before writing anything
        raise NotImplementedError(f"candle symbol column of type {symbol_type!r}")
    names = COLUMNS if quote else COLUMNS[:5]
    fields = [
        ("count", ">i2"),
        ("len_symbol", ">i4"), ("symbol", width),
        ("len_timeframe", ">i4"), ("timeframe", f"S{len(timeframe.encode())}"),
        ("len_open_time", ">i4"), ("open_time", ">i8"),
    ]
    for name in names:
        fields += [(f"len_{name}", ">i4"), (name, ">f8")]
    return np.dtype(fields), [col[c] for c in ("symbol", "timeframe", "open_time", *names)]


def copy_candles(connection, cursor, symbol_id, timeframe, cols, quote: bool) -> None:
    """Binary COPY of ``cols`` (sorted, checked, no open time already stored) straight into
    the candle table: one statement, the server's batched heap inserts."""
    n = len(cols["open_time_ms"])
    if n == 0:
        return
    dtype, columns = candle_dtype(connection, timeframe, quote)
    rows = np.empty(n, dtype=dtype)
    rows["count"] = len(columns)
    rows["len_symbol"] = dtype["symbol"].itemsize
    rows["symbol"] = symbol_id
    rows["len_timeframe"] = dtype["timeframe"].itemsize
    rows["timeframe"] = timeframe.encode()
    rows["len_open_time"] = 8
    rows["open_time"] = cols["open_time_ms"] * 1000 - EPOCH_US
    for name in COLUMNS if quote else COLUMNS[:5]:
        rows[f"len_{name}"] = 8
        rows[name] = cols[name]
    qn = connection.ops.quote_name
    sql = (f"COPY {qn(Candle._meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
           "FROM STDIN (FORMAT BINARY)")
    body = memoryview(rows.view(np.uint8))
    del rows
    # Django's error classes (an IntegrityError on a duplicate), as for its own statements.
    with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        copy.write(HEADER)
        step = 1 << 20  # psycopg sends what it is given as one message; keep them moderate
        for start in range(0, len(body), step):
            copy.write(body[start:start + step])
        copy.write(TRAILER)
