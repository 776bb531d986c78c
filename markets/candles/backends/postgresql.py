"""The PostgreSQL candle backend: under a transaction-level advisory lock per symbol and
timeframe, candles into an empty span of time by one binary ``COPY`` straight into the table,
others by a binary ``COPY`` into a temporary table and an ``INSERT ... SELECT ... ON CONFLICT``
that leaves bit-identical candles alone; reads by one binary ``COPY ... TO STDOUT`` parsed by
numpy. The binary format: :mod:`markets.candles.backends.postgresql_copy`.
"""

from __future__ import annotations

import numpy as np

from markets.candles.backends import postgresql_copy as pgcopy
from markets.candles.backends.base import CandleBackend, Query
from markets.candles.columns import COLUMNS, ms_to_datetime, split, table
from markets.timeframes import TIMEFRAMES

#: Namespace of the candle writers' transaction-level advisory locks (the first int4 key is
#: this plus the timeframe's index, the second the symbol id): "CN" in the high bytes.
LOCK_NAMESPACE = 0x434E_0000


class PostgreSQLCandleBackend(CandleBackend):
    vendor = "postgresql"
    #: Rows per chunk of an upsert into a span already holding candles: one COPY and one
    #: INSERT each.
    chunk_size = 50_000
    #: The symbol row is key-share locked to the end of the transaction, as the foreign-key
    #: trigger would lock it, so it cannot be deleted under the upsert.
    symbol_lock = " FOR KEY SHARE"

    def upsert(self, symbol_id, timeframe, cols, chunk_size) -> tuple[int, int]:
        """Candles into a span of time holding none yet: one binary COPY into the candle table.
        Otherwise :meth:`upsert_existing` (``ON CONFLICT``) for every row.

        ``ON CONFLICT`` makes every row a speculative insertion (an index probe, a speculative
        heap tuple, a second WAL record to confirm it), about twice the cost of a plain insert of
        a new candle. So the candle writers of one symbol and timeframe take turns (a
        transaction-level advisory lock) and one index probe asks whether anything is stored
        between the first and the last open time given; when nothing is, no row can conflict
        and all of them go in by COPY (a backfill into an empty range, a first import). A writer
        that bypassed the lock and stored one of them meanwhile makes the COPY fail on the
        unique constraint (nothing is written), never a wrong count or a lost row."""
        connection = self.connection
        table_name, col = table()
        qn = connection.ops.quote_name
        times = cols["open_time_ms"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [
                LOCK_NAMESPACE + TIMEFRAMES.index(timeframe),
                # The second key is an int4: ids past 2**31 wrap (a shared lock, still correct).
                (symbol_id + 2**31) % 2**32 - 2**31,
            ])
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {qn(table_name)} WHERE {qn(col['symbol'])} = %s AND "
                f"{qn(col['timeframe'])} = %s AND {qn(col['open_time'])} BETWEEN %s AND %s)",
                [symbol_id, timeframe, ms_to_datetime(times[0]), ms_to_datetime(times[-1])],
            )
            if not cursor.fetchone()[0]:
                missing = np.isnan(cols["quote_volume"])
                if not missing.any():
                    pgcopy.copy_candles(connection, cursor, symbol_id, timeframe, cols, quote=True)
                else:  # rows without a quote volume leave the column to its NULL default
                    for quote, pick in ((True, ~missing), (False, missing)):
                        pgcopy.copy_candles(connection, cursor, symbol_id, timeframe,
                                         {k: a[pick] for k, a in cols.items()}, quote=quote)
                return len(times), 0
        return self.upsert_existing(symbol_id, timeframe, cols, chunk_size)

    def upsert_existing(self, symbol_id, timeframe, cols, chunk_size) -> tuple[int, int]:
        """Per chunk: a binary COPY into a temporary table, then one ``INSERT ... SELECT ... ON
        CONFLICT DO UPDATE``. An existing candle whose stored values are already bit for bit the
        given ones is left alone (no new row version, no index entries; ``ON CONFLICT`` still
        locks it); it still counts as updated. Counts: rows the INSERT created (``xmax = 0``);
        every other row existed."""
        connection = self.connection
        table_name, col = table()
        qn = connection.ops.quote_name
        key = [qn(col["symbol"]), qn(col["timeframe"]), qn(col["open_time"])]
        values = [qn(col[c]) for c in COLUMNS]
        staging = "tradesite_candle_staging"
        select_values = ", ".join(COLUMNS[:5]) + ", NULLIF(quote_volume, 'NaN'::float8)"
        # float8send compares bits: a -0.0 stored earlier is replaced by 0.0 (= calls them equal).
        stored = ", ".join(f"float8send(stored.{v})" for v in values)
        given = ", ".join(f"float8send(excluded.{v})" for v in values)
        upsert = (
            f"WITH written AS (INSERT INTO {qn(table_name)} AS stored ({', '.join(key + values)}) "
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
                payload = pgcopy.copy_in(cols, start, min(start + chunk_size, n))
                with raw.copy(f"COPY {staging} FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(payload)
                cursor.execute(upsert, [symbol_id, timeframe])
                inserted += cursor.fetchone()[0]
        return inserted, n - inserted

    # PostgreSQL: COPY ... TO STDOUT takes no parameters, so every value is inlined, and every
    # one is an int or a known timeframe name (checked by the caller), so nothing can inject.
    def series_where(self, query: Query, symbol_column, timeframe_column, symbol_id,
                     timeframe) -> str:
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {timeframe!r}")
        return f"{symbol_column} = {int(symbol_id)} AND {timeframe_column} = '{timeframe}'"

    def bound(self, query: Query, ms: int) -> str:
        return f"timestamptz 'epoch' + {int(ms)} * interval '1 millisecond'"

    def fetch(self, query: Query) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        blocks = []
        sql = query.sql(f"(EXTRACT(EPOCH FROM {query.key_time}) * 1000)::bigint")
        with self.connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY ({sql}) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            while block := copy.read():
                blocks.append(bytes(block))
        payload = b"".join(blocks)
        del blocks
        rows = pgcopy.copy_out(payload, pgcopy.OUT if query.values else pgcopy.TIMES)
        return split(rows, query.values, query.descending)
