"""Rows in, checked numpy columns out; the candle table's names; times as int ms UTC.

What every candle-store backend shares (:mod:`markets.candles.backends`): rows given to
``upsert_candles`` become numpy columns, are checked against the candle contract
(:mod:`markets.candle_contract`), deduplicated and sorted; fetched rows become contiguous
columns, oldest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from itertools import chain

import numpy as np

from markets.candle_contract import RULES, DroppedCandles, failed_rules, format_ms
from markets.models import Candle
from markets.timeframes import timeframe_ms

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")


class InvalidCandles(ValueError):
    """Rows that must not be stored (nothing was written). Fix or drop them and retry."""


def ms_to_datetime(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=int(ms))


def datetime_to_ms(value: dt.datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def table() -> tuple[str, dict[str, str]]:
    """The candle table's name and its column names by field name."""
    meta = Candle._meta
    names = ("symbol", "timeframe", "open_time", *COLUMNS)
    return meta.db_table, {name: meta.get_field(name).column for name in names}


# -- input -> checked numpy columns ---------------------------------------------------------


def columns(rows: Iterable) -> dict[str, np.ndarray]:
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
    for i, name in enumerate(COLUMNS):
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
    for i, name in enumerate(COLUMNS[:5]):
        cols[name] = flat[:, 1 + i]
    cols["quote_volume"] = flat[:, 6] if width == 7 else np.full(n, np.nan)
    return cols



def check(cols: dict[str, np.ndarray], timeframe: str, *, dropped: DroppedCandles | None = None,
          venue: str = "", symbol: str = "") -> dict[str, np.ndarray]:
    """The rows that keep the candle contract. Without ``dropped``: raise InvalidCandles
    naming the first bad rows of each problem (nothing is stored); with it: drop each bad row,
    logged and counted there. The database's own checks stay a net."""
    step = timeframe_ms(timeframe)
    failed = failed_rules(cols, step)
    bad = failed >= 0
    if not bad.any():
        return cols
    t = cols["open_time_ms"]
    if dropped is not None:
        for i in np.flatnonzero(bad).tolist():
            rule = RULES[failed[i]]
            values = [cols[k][i] for k in ("open_time_ms", *COLUMNS)]
            dropped.add(values, rule.detail(*values, step, timeframe), venue=venue,
                        symbol=symbol, timeframe=timeframe,
                         summary=rule.summary.format(timeframe=timeframe))
        return {k: a[~bad] for k, a in cols.items()}
    problems = []
    for number, rule in enumerate(RULES):
        idx = np.flatnonzero(failed == number)
        if len(idx):
            first = ", ".join(format_ms(t[i]) for i in idx[:3])
            problems.append(f"{len(idx)} row(s): {rule.summary.format(timeframe=timeframe)} "
                            f"(first: {first})")
    raise InvalidCandles("nothing stored; " + "; ".join(problems))


def dedupe_last(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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




# -- fetched rows -> columns ------------------------------------------------------------------


def split(rows, values: bool, descending: bool
           ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Fetched rows (a structured array, or columns by name) -> contiguous native columns,
    oldest first. At most one copy per column, so the peak is about twice the candles' own
    size, not more."""

    def column(name, dtype):  # a column already contiguous and native is taken as it is
        return np.ascontiguousarray(rows[name][::-1] if descending else rows[name], dtype=dtype)

    times = column("open_time_ms", np.int64)
    if not values:
        return times, None
    return times, {name: column(name, np.float64) for name in COLUMNS[:5]}
