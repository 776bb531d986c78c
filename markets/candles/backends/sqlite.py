"""The SQLite candle backend: multi-row ``INSERT ... VALUES ... ON CONFLICT DO UPDATE``
statements on the raw sqlite3 connection (inside Django's transaction, which holds SQLite's
write lock); reads straight into numpy, through the C reader of :mod:`markets.sqlite_columns`
(an optional accelerator: its own read-only connection, used when it sees what Django's
connection sees) or one query on the raw cursor consumed by ``np.fromiter``.
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np

from markets import sqlite_columns
from markets.candles.backends.base import CandleBackend, Query
from markets.candles.columns import COLUMNS, ms_to_datetime, split, table
from markets.timeframes import timeframe_ms

log = logging.getLogger("markets.candles")

#: Reads of fewer rows than this (a ``limit``) keep to Django's connection: opening a second
#: one costs more than it saves.
C_READER_MIN_ROWS = 20_000
#: One fetched row as numpy reads it from the cursor's tuples.
_ROWS = np.dtype([("open_time_ms", np.int64), *((c, np.float64) for c in COLUMNS[:5])])
_TIMES = np.dtype([("open_time_ms", np.int64)])


def sqlite_times(connection, times_ms: np.ndarray) -> list[str]:
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
        if text[i] != adapt(ms_to_datetime(times_ms[i])):
            return [adapt(ms_to_datetime(ms)) for ms in times_ms.tolist()]
    return text


class SQLiteCandleBackend(CandleBackend):
    vendor = "sqlite"
    #: Rows of one multi-row ``INSERT ... VALUES`` (a statement's fixed costs, e.g. the CHECK
    #: constraint ``timeframe IN (...)`` list, are paid per execution, so one row per
    #: execution costs about twice as much per row).
    chunk_size = 2_000

    def upsert(self, symbol_id, timeframe, cols, chunk_size) -> tuple[int, int]:
        """Multi-row ``INSERT ... VALUES (..), (..) ON CONFLICT DO UPDATE`` statements of
        ``chunk_size`` rows through the raw sqlite3 connection (inside Django's transaction).
        Counts: the candles stored in the input's time span before and after (the transaction
        holds SQLite's write lock, so only these rows can have been added)."""
        connection = self.connection
        table_name, col = table()
        qn = connection.ops.quote_name
        key = [qn(col["symbol"]), qn(col["timeframe"]), qn(col["open_time"])]
        values = [qn(col[c]) for c in COLUMNS]
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
                f"INSERT INTO {qn(table_name)} ({', '.join(key + values)}) VALUES {groups} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                + ", ".join(f"{v} = excluded.{v}" for v in values)
            )

        n = len(cols["open_time_ms"])
        times = sqlite_times(connection, cols["open_time_ms"])
        table_rows = np.empty((n, width), dtype=object)
        table_rows[:, 0] = times
        for i, name in enumerate(COLUMNS[:5]):
            table_rows[:, 1 + i] = cols[name]
        q = cols["quote_volume"]
        table_rows[:, width - 1] = q
        if (missing := np.isnan(q)).any():
            table_rows[missing, width - 1] = None
        count_sql = (
            f"SELECT count(*) FROM {qn(table_name)} WHERE {key[0]} = ? AND {key[1]} = ? "
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

    def series_where(self, query: Query, symbol_column, timeframe_column, symbol_id,
                     timeframe) -> str:
        query.params = [symbol_id, timeframe]
        return f"{symbol_column} = ? AND {timeframe_column} = ?"

    def bound(self, query: Query, ms: int) -> str:
        query.params.append(self.connection.ops.adapt_datetimefield_value(ms_to_datetime(ms)))
        return "?"

    def fetch(self, query: Query) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        connection = self.connection
        connection.ensure_connection()
        if self.c_reader_fits(query.limit):
            try:  # the C reader parses the stored time text itself (no unixepoch() per row)
                return self.fetch_c(query)
            except sqlite_columns.ReadError as exc:  # the sqlite3 module reads (or reports)
                log.warning("candles read through sqlite3: the C reader failed: %s", exc)
        # The raw sqlite3 cursor, consumed straight into numpy: no list of row tuples (one
        # year of 1m candles would be ~150 MB of them) and no Django query rewriting.
        cursor = connection.connection.cursor()
        try:
            rows = np.fromiter(cursor.execute(query.sql(time_sql(query.key_time)),
                                              query.params),
                               dtype=_ROWS if query.values else _TIMES)
        finally:
            cursor.close()
        return split(rows, query.values, query.descending)

    def c_reader_fits(self, limit: int | None) -> bool:
        """Whether the C reader (its own read-only connection) sees what Django's connection
        sees: the module is built and shares Python's SQLite, the database is a file, and
        Django's connection has no transaction open (whose uncommitted rows another
        connection cannot see). And the read is large enough to be worth a second
        connection."""
        connection = self.connection
        if not sqlite_columns.AVAILABLE:
            return False
        if limit is not None and limit < C_READER_MIN_ROWS:
            return False
        if connection.is_in_memory_db():
            return False
        return (not connection.in_atomic_block and connection.get_autocommit()
                and not connection.connection.in_transaction)

    def fetch_c(self, query: Query) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """``fetch`` through the C reader: the same rows (the open time as stored, parsed by
        the reader), written straight into numpy arrays, oldest first. The arrays are sized
        by the first and last stored open time (a count only when times are off the
        timeframe's step); an ascending read without a limit goes through the reader's
        ``tradesite_collect`` aggregate (see :func:`markets.sqlite_columns.read_columns`)."""
        settings = self.connection.settings_dict
        options = settings.get("OPTIONS", {})
        symbol_id, timeframe, *_bounds = query.params
        source = f"FROM {query.quoted_table} WHERE {query.where}"
        key_time, value_columns = query.key_time, query.value_columns
        times, columns = sqlite_columns.read_columns(
            str(settings["NAME"]), uri=bool(options.get("uri")),
            timeout_s=float(options.get("timeout", 5)),
            count_sql=f"SELECT count(*) {source}",
            # one statement each: SQLite answers a lone min() or max() from the index, both
            # together by a scan
            span_sql=(f"SELECT min({key_time}) {source}", f"SELECT max({key_time}) {source}"),
            step=timeframe_ms(timeframe),
            collect_sql=None if query.descending or query.limit is not None else (
                f"SELECT tradesite_collect({', '.join([key_time, *value_columns])}) {source}"),
            sql=query.sql(key_time), symbol_id=int(symbol_id),
            texts=[str(t) for t in query.params[1:]], limit=query.limit,
            descending=query.descending, nvalues=len(value_columns),
        )
        if not value_columns:
            return times, None
        return times, dict(zip(COLUMNS[:5], columns, strict=True))


def time_sql(column: str) -> str:
    """SQL for a stored open time as int ms UTC. Stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]' UTC;
    candles have whole seconds (both forms drop a fraction). unixepoch() (SQLite 3.38) costs
    less per row than strftime('%s'), which runs on the raw cursor, so '%s' is not a
    placeholder."""
    if sqlite3.sqlite_version_info >= (3, 38):
        return f"unixepoch({column}) * 1000"
    return f"CAST(strftime('%s', {column}) AS INTEGER) * 1000"
