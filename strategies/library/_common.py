"""Helpers the library's strategies share: trading days from open times, actions arrays.

Pure: numpy and the standard library only.
"""

from __future__ import annotations

import numpy as np

from strategies.trade_math import DAY_MS, HOUR_MS


def day_keys(open_time_ms: np.ndarray, utc_offset_hours: float) -> np.ndarray:
    """Trading-day index of each candle, days starting at 00:00 UTC + ``utc_offset_hours``."""
    offset = int(utc_offset_hours * HOUR_MS)  # as strategies.trade_math.trading_day
    return (np.asarray(open_time_ms, dtype=np.int64) + offset) // DAY_MS


def group_starts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``keys``: (index where each group starts, group number of each element)."""
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(change)
    group = np.cumsum(change) - 1
    return starts, group


def last_bar_of_day(open_time_ms: np.ndarray, utc_offset_hours: float) -> np.ndarray:
    """True for a candle whose close ends its trading day (known at that candle's close).

    Candle ``i`` is the day's last when ``open + timeframe`` falls in the next day. The
    timeframe is inferred causally, as the smallest step between open times up to candle ``i``
    (so the first candle is never a day's last: its timeframe is not known yet). Candles of a
    day or longer are each their own day's last.
    """
    t = np.asarray(open_time_ms, dtype=np.int64)
    out = np.zeros(t.shape[0], dtype=bool)
    if t.shape[0] < 2:
        return out
    steps = np.diff(t)
    steps = np.where(steps > 0, steps, np.iinfo(np.int64).max)
    step = np.minimum.accumulate(steps)
    known = step < np.iinfo(np.int64).max
    later = t[1:] + np.where(known, step, 0)
    out[1:] = known & (day_keys(later, utc_offset_hours) != day_keys(t[1:], utc_offset_hours))
    return out


def previous_day_close(open_time_ms, close, utc_offset_hours: float) -> np.ndarray:
    """For each candle, the last close of the previous trading day present in the data.

    NaN on the first day of the data and after a missing day (the previous day must be the
    calendar day before).
    """
    keys = day_keys(open_time_ms, utc_offset_hours)
    starts, group = group_starts(keys)
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape[0], np.nan)
    if starts.size < 2:
        return out
    prev_last = np.full(starts.size, np.nan)
    prev_last[1:] = c[starts[1:] - 1]
    consecutive = np.zeros(starts.size, dtype=bool)
    consecutive[1:] = keys[starts[1:]] - keys[starts[:-1]] == 1
    prev_last[~consecutive] = np.nan
    return prev_last[group]


def sign(values: np.ndarray) -> np.ndarray:
    """-1, 0 or 1 per value; NaN stays NaN."""
    return np.sign(np.asarray(values, dtype=np.float64))
