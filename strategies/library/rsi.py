"""RSI reversal, long only.

Trades: enter long when Wilder's RSI crosses up through ``oversold``; exit when it crosses down
through ``overbought``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from strategies import indicators as ind
from strategies.base import ENTER_LONG, EXIT_LONG, Candles, Signals, Strategy
from strategies.params import ParamError, Params, param
from strategies.registry import register


@dataclasses.dataclass(frozen=True)
class RsiParams(Params):
    period: int = param(14, min=2, max=200, help="RSI bars (Wilder)", grid=(7, 14, 21))
    oversold: float = param(30.0, min=1.0, max=99.0, help="enter on crossing up through",
                            grid=(20.0, 25.0, 30.0))
    overbought: float = param(70.0, min=1.0, max=99.0, help="exit on crossing down through",
                              grid=(70.0, 75.0, 80.0))

    def check(self) -> None:
        if self.oversold >= self.overbought:
            raise ParamError(
                f"oversold ({self.oversold}) must be below overbought ({self.overbought})"
            )


@register
class Rsi(Strategy):
    name = "rsi"
    Params = RsiParams

    def lookback(self) -> int:
        return ind.rsi_bars(self.params.period) + 1

    def signals(self, candles: Candles) -> Signals:
        p = self.params
        value = ind.rsi(candles.close, p.period)
        actions = np.zeros(len(candles), dtype=np.int8)
        actions[ind.crossed_below(value, p.overbought)] = EXIT_LONG
        actions[ind.crossed_above(value, p.oversold)] = ENTER_LONG
        return Signals(actions=actions, score=value)
