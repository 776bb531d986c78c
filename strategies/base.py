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

from markets.candle_arrays import Candles
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

#: The one definition of the actions: code (what a strategy's arrays and the compiled backtest
#: loop carry), name (what a stored ``Signal``, the API and the pages carry) and a trader's label.
#: ``strategies.models.Action`` (the stored choices) is built from this table.
ACTIONS: tuple[tuple[int, str, str], ...] = (
    (HOLD, "hold", "Hold"),
    (ENTER_LONG, "enter_long", "Enter long"),
    (EXIT_LONG, "exit_long", "Exit long"),
    (ENTER_SHORT, "enter_short", "Enter short"),
    (EXIT_SHORT, "exit_short", "Exit short"),
    (ADD_LONG, "add_long", "Add to long"),
    (ADD_SHORT, "add_short", "Add to short"),
)
ACTION_NAMES: dict[int, str] = {code: name for code, name, _label in ACTIONS}
ACTION_CODES: dict[str, int] = {name: code for code, name in ACTION_NAMES.items()}


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
