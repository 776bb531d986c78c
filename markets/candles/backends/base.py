"""What a candle-store backend provides (one per database vendor), and what they share.

A backend is built per call around one Django connection (:func:`markets.candles.backends.
backend_for`). :mod:`markets.candles.store` checks, deduplicates and sorts the rows, opens the
transaction and asks the backend to hold the symbol, then to write; reads ask it for columns.
"""

from __future__ import annotations

import numpy as np

from markets.candles.columns import COLUMNS, InvalidCandles, table
from markets.models import Symbol


class Query:
    """The parts of one read of a series: table, quoted names, the WHERE clause (with the
    bounds, written by the backend's ``bound``) and the statement."""

    def __init__(self, backend: CandleBackend, symbol_id: int, timeframe: str,
                 start_ms: int | None, end_ms: int | None, *, values: bool, descending: bool,
                 limit: int | None) -> None:
        connection = backend.connection
        self.table, col = table()
        qn = connection.ops.quote_name
        self.quoted_table = qn(self.table)
        self.key_time = qn(col["open_time"])
        self.value_columns = [qn(col[c]) for c in COLUMNS[:5]] if values else []
        self.values, self.descending, self.limit = values, descending, limit
        self.params: list = []
        self.where = backend.series_where(self, qn(col["symbol"]), qn(col["timeframe"]),
                                          symbol_id, timeframe)
        if start_ms is not None:
            self.where += f" AND {self.key_time} >= {backend.bound(self, start_ms)}"
        if end_ms is not None:
            self.where += f" AND {self.key_time} < {backend.bound(self, end_ms)}"

    def sql(self, time_column: str) -> str:
        sql = (
            f"SELECT {', '.join([time_column, *self.value_columns])} FROM {self.quoted_table} "
            f"WHERE {self.where} ORDER BY {self.key_time} "
            f"{'DESC' if self.descending else 'ASC'}"
        )
        return sql if self.limit is None else f"{sql} LIMIT {int(self.limit)}"


class CandleBackend:
    """The interface. Subclasses set ``vendor`` and ``chunk_size`` and implement ``upsert``,
    ``fetch``, ``series_where`` and ``bound``; ``symbol_lock`` is appended to the symbol probe."""

    vendor = ""
    #: Rows per statement (see ``upsert_candles``'s ``chunk_size``).
    chunk_size = 1
    symbol_lock = ""

    def __init__(self, connection) -> None:
        self.connection = connection

    def hold_symbol(self, symbol_id: int) -> None:
        """The candle table's reference to its symbol, checked here once per call rather than
        by the database once per row (``Candle.symbol`` has no database constraint;
        ``upsert_candles`` is its only writer). Inside the writer's transaction."""
        qn = self.connection.ops.quote_name
        sql = (f"SELECT 1 FROM {qn(Symbol._meta.db_table)} WHERE "
               f"{qn(Symbol._meta.pk.column)} = %s{self.symbol_lock}")
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [symbol_id])
            if cursor.fetchone() is None:
                raise InvalidCandles(f"nothing stored; there is no symbol with id {symbol_id}")

    def upsert(self, symbol_id: int, timeframe: str, cols: dict[str, np.ndarray],
               chunk_size: int) -> tuple[int, int]:
        """Write checked, sorted, deduplicated columns; returns ``(inserted, updated)``."""
        raise NotImplementedError

    def fetch(self, query: Query) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """Open times (int64 ms) and, when ``query.values``, float64 columns open ... volume,
        oldest first, in one snapshot."""
        raise NotImplementedError

    def series_where(self, query: Query, symbol_column: str, timeframe_column: str,
                     symbol_id: int, timeframe: str) -> str:
        raise NotImplementedError

    def bound(self, query: Query, ms: int) -> str:
        """SQL for an open-time bound of ``query`` (a placeholder, or an inlined literal)."""
        raise NotImplementedError
