"""Candle series as numpy columns: what strategies, indicators and the backtester read.

Lives in ``markets`` (the lowest layer) so that storage (:func:`markets.candles.load_candles`)
can hand it out without importing ``strategies``; :mod:`strategies.base` re-exports it, so
``strategies.base.Candles`` is this same class. Pure: numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Candles:
    """Closed candles of one symbol and timeframe, oldest first, as parallel numpy arrays.

    ``open_time_ms`` is int64 ms UTC; prices and volume are float64.
    """

    open_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.open_time_ms)
        for f in dataclasses.fields(self):
            arr = getattr(self, f.name)
            if len(arr) != n:
                raise ValueError(
                    f"Candles.{f.name} has {len(arr)} values but open_time_ms has {n}; "
                    "every column must have one value per candle"
                )

    def __len__(self) -> int:
        return len(self.open_time_ms)

    def tail(self, n: int) -> Candles:
        """The newest ``n`` candles (all of them when there are fewer)."""
        return self[max(len(self) - n, 0) :]

    def __getitem__(self, index: slice) -> Candles:
        if not isinstance(index, slice):
            raise TypeError("Candles can be sliced, not indexed; use candles.close[i]")
        return Candles(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @classmethod
    def from_arrays(cls, open_time_ms, open, high, low, close, volume) -> Candles:  # noqa: A002
        return cls(
            open_time_ms=np.asarray(open_time_ms, dtype=np.int64),
            open=np.asarray(open, dtype=np.float64),
            high=np.asarray(high, dtype=np.float64),
            low=np.asarray(low, dtype=np.float64),
            close=np.asarray(close, dtype=np.float64),
            volume=np.asarray(volume, dtype=np.float64),
        )
