"""The strategy interface: one declaration, three runners (backtest, paper, live).

A strategy declares ``Params`` (see :mod:`strategies.params`), ``lookback()`` (how many bars the
newest decision needs to be final) and ``signals(candles)``, a pure function from OHLCV arrays to
one action per bar. It decides on the close of bar ``i`` using bars ``[0, i]`` only; the runner
fills at the open of bar ``i + 1``. The backtester calls ``signals`` once on the whole series;
paper and live trading call it on ``candles.tail(lookback())`` and act on the last action.

Pure: numpy and the standard library only. Strategies never import Django or ``orders``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from strategies.params import Params

# Per-bar actions, stored as int8. The names are a trader's vocabulary.
HOLD = 0
ENTER_LONG = 1
EXIT_LONG = 2
ENTER_SHORT = 3
EXIT_SHORT = 4
# Pyramiding: add to an open position of the same side (ignored when flat or on the other side).
ADD_LONG = 5
ADD_SHORT = 6

ACTION_NAMES: dict[int, str] = {
    HOLD: "hold",
    ENTER_LONG: "enter_long",
    EXIT_LONG: "exit_long",
    ENTER_SHORT: "enter_short",
    EXIT_SHORT: "exit_short",
    ADD_LONG: "add_long",
    ADD_SHORT: "add_short",
}
ACTION_CODES: dict[str, int] = {name: code for code, name in ACTION_NAMES.items()}


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


@dataclasses.dataclass(frozen=True)
class Signals:
    """One action per candle (int8, the constants above) and an optional score per candle.

    ``size`` (optional, float) scales the entry: 1.0 is one unit; pyramiding strategies use it
    for trial entries (0.5) and adds.
    """

    actions: np.ndarray
    score: np.ndarray | None = None
    size: np.ndarray | None = None


class Strategy:
    """Base class. Subclasses set ``name`` and ``Params`` and implement the two methods."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    #: Whether the strategy may open short positions (futures, or paper shorts).
    can_short: ClassVar[bool] = False

    def __init__(self, params: Params | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def lookback(self) -> int:
        """Bars needed so that the newest action equals the full-series action."""
        raise NotImplementedError

    def signals(self, candles: Candles) -> Signals:
        """Per-bar actions for ``candles``; action ``i`` uses bars ``[0, i]`` only."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"
