"""The symbol screener: figures per symbol from its candles, and a ranking within a venue.

Figures (percent values are percent, 2.5 = 2.5 %):

``atr_pct``
    the mean true range of the last ``atr_period`` candles as a percent of the last close;
``range_24h_pct``
    (highest high - lowest low) of the candles of the last 24 hours, as a percent of that low;
``traded_value_24h``
    Σ close × volume over the candles of the last 24 hours (quote currency);
``momentum_pct``
    the last close against the close just before the 24-hour window, in percent (None when the
    candles do not reach back that far).

Ranking: each figure becomes a percentile rank within the venue (0 = lowest, 1 = highest; ties
share the mean of their places; a missing figure ranks lowest), the score is the mean of the
four, and symbols are ordered by score, then traded value, then key. Higher volatility, value
and momentum rank higher: the screener looks for symbols worth trading actively.

Pure: numpy and the standard library.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from strategies.base import Candles

DAY_MS = 86_400_000
FIGURES = ("atr_pct", "range_24h_pct", "traded_value_24h", "momentum_pct")


@dataclasses.dataclass(frozen=True)
class Figures:
    last_close: float
    atr_pct: float | None
    range_24h_pct: float | None
    traded_value_24h: float
    momentum_pct: float | None


@dataclasses.dataclass(frozen=True)
class Ranked:
    key: str
    figures: Figures
    score: float
    rank: int


def figures(candles: Candles, bar_ms: int, *, atr_period: int = 14) -> Figures | None:
    """The figures of one symbol's candles (oldest first), or None without candles."""
    n = len(candles)
    if n == 0:
        return None
    close = candles.close
    last = float(close[-1])
    atr_pct = None
    if n > atr_period:
        prev = close[-atr_period - 1 : -1]
        high, low = candles.high[-atr_period:], candles.low[-atr_period:]
        tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
        atr_pct = float(tr.mean() / last * 100.0) if last > 0 else None
    window_start = int(candles.open_time_ms[-1]) + bar_ms - DAY_MS
    first = int(np.searchsorted(candles.open_time_ms, window_start, side="left"))
    low_24h = float(candles.low[first:].min())
    high_24h = float(candles.high[first:].max())
    range_pct = (high_24h - low_24h) / low_24h * 100.0 if low_24h > 0 else None
    value = float((close[first:] * candles.volume[first:]).sum())
    momentum = None
    if first > 0 and close[first - 1] > 0:
        momentum = float((last / close[first - 1] - 1.0) * 100.0)
    return Figures(last, atr_pct, range_pct, value, momentum)


def percentile_ranks(values: list[float | None]) -> list[float]:
    """Percentile rank of each value among ``values`` (None ranks below every number)."""
    n = len(values)
    if n == 1:
        return [1.0]
    keyed = [(-np.inf if v is None else v) for v in values]
    out = []
    for v in keyed:
        below = sum(1 for w in keyed if w < v)
        equal = sum(1 for w in keyed if w == v)
        out.append((below + (equal - 1) / 2.0) / (n - 1))
    return out


def rank(rows: dict[str, Figures]) -> list[Ranked]:
    """Rank one venue's symbols (see the module docstring), best first."""
    keys = sorted(rows)
    if not keys:
        return []
    columns = [percentile_ranks([getattr(rows[k], name) for k in keys]) for name in FIGURES]
    scores = {k: float(np.mean([col[i] for col in columns])) for i, k in enumerate(keys)}
    order = sorted(keys, key=lambda k: (-scores[k], -rows[k].traded_value_24h, k))
    return [Ranked(k, rows[k], scores[k], i + 1) for i, k in enumerate(order)]
