"""The candle store's public functions: upsert, load into numpy, last open time, gaps.

They check, deduplicate and sort the rows here and leave the database work to the backend of
the connection's vendor (:mod:`markets.candles.backends`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.db import connections, transaction
from django.db.models import Max

from markets.candle_arrays import Candles
from markets.candle_contract import DroppedCandles
from markets.candles.backends import backend_for
from markets.candles.backends.base import Query
from markets.candles.columns import COLUMNS, check, columns, datetime_to_ms, dedupe_last
from markets.models import Candle
from markets.timeframes import timeframe_ms


def upsert_candles(
    symbol_id: int,
    timeframe: str,
    rows: Iterable,
    *,
    chunk_size: int | None = None,
    using: str = "default",
    dropped: DroppedCandles | None = None,
    venue: str = "",
    symbol: str = "",
) -> tuple[int, int]:
    """Insert or update closed candles of one symbol and timeframe; returns ``(inserted,
    updated)``.

    ``rows`` are CandleRow/Bar-like objects or sequences ``(open_time_ms, open, high, low,
    close, volume[, quote_volume])``. Every row is checked first against the candle contract
    (:mod:`markets.candle_contract`: aligned open time, finite prices, ``0 < low <= open,
    close <= high``, volumes not negative). Without ``dropped`` one bad row raises
    :class:`InvalidCandles` and nothing is written; with it each bad row is dropped, logged
    (named with ``venue`` and ``symbol``) and counted there, and the others are stored. An open
    time given twice is stored once (the last row wins) and counted once. An existing candle
    counts as updated even when its values are unchanged. Runs in one transaction,
    ``chunk_size`` rows per statement (default: the backend's -- 2,000 on SQLite; on
    PostgreSQL 50,000, each chunk one COPY and one INSERT, unless no candle is stored yet
    between the first and last open time given: then one COPY of all rows).
    """
    timeframe_ms(timeframe)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    cols = columns(rows)
    if len(cols["open_time_ms"]) == 0:
        return 0, 0
    cols = check(cols, timeframe, dropped=dropped, venue=venue, symbol=symbol)
    if len(cols["open_time_ms"]) == 0:
        return 0, 0
    cols = dedupe_last(cols)
    for name in COLUMNS:
        # -0.0 -> 0.0 (IEEE: -0.0 + 0.0 is 0.0), as the ORM's drivers store it; all else as is.
        cols[name] = cols[name] + 0.0
    backend = backend_for(connections[using])
    with transaction.atomic(using=using):
        backend.hold_symbol(symbol_id)
        return backend.upsert(symbol_id, timeframe, cols, chunk_size or backend.chunk_size)


def _fetch(symbol_id, timeframe, start_ms, end_ms, *, using: str, values: bool,
           descending: bool = False, limit: int | None = None
           ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    backend = backend_for(connections[using])
    return backend.fetch(Query(backend, symbol_id, timeframe, start_ms, end_ms, values=values,
                               descending=descending, limit=limit))


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
    times, values = _fetch(symbol_id, timeframe, start_ms, end_ms, using=using, values=True,
                           descending=newest, limit=limit)
    return Candles(open_time_ms=times, **values)


def last_open_time_ms(symbol_id: int, timeframe: str, *, using: str = "default") -> int | None:
    """Open time (ms) of the newest stored candle, or None when there is none."""
    newest = (
        Candle.objects.using(using)
        .filter(symbol_id=symbol_id, timeframe=timeframe)
        .aggregate(newest=Max("open_time"))["newest"]
    )
    return None if newest is None else datetime_to_ms(newest)


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
    present, _ = _fetch(symbol_id, timeframe, first, last, using=using, values=False)
    present = present[present % step == 0]  # an unaligned stray never hides a gap
    # Sentinels just outside the range turn leading and trailing gaps into inner ones.
    marks = np.concatenate(([first - step], present, [last]))
    jumps = np.flatnonzero(np.diff(marks) > step)
    return [(int(marks[i] + step), int(marks[i + 1])) for i in jumps]
