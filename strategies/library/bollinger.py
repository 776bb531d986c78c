"""Bollinger-band mean reversion.

Trades: long when a close back inside the lower band follows a close below it, short when a
close back inside the upper band follows a close above it; a long exits when the close crosses
above the middle band, a short when it crosses below. Optional realized-volatility filter:
enter only while volatility is rising. Bands: SMA(period) ± k population stdev (TA-Lib).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from strategies import indicators as ind
from strategies.base import (
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    Candles,
    Signals,
    Strategy,
)
from strategies.params import Params, param
from strategies.registry import register


@dataclasses.dataclass(frozen=True)
class BollingerParams(Params):
    period: int = param(20, min=2, max=500, help="bars in the bands", grid=(14, 20, 30))
    k: float = param(2.0, min=0.1, max=5.0, help="band width in standard deviations",
                     grid=(1.5, 2.0, 2.5))
    shorts: bool = param(True, help="also trade the upper band short")
    vol_filter: bool = param(False, help="enter only while realized volatility is rising")
    vol_window: int = param(20, min=2, max=500, help="bars in the realized volatility")


@register
class Bollinger(Strategy):
    name = "bollinger"
    Params = BollingerParams
    can_short = True

    def lookback(self) -> int:
        p = self.params
        bars = p.period + 1
        if p.vol_filter:
            bars = max(bars, p.vol_window + 2)
        return bars + 1

    def signals(self, candles: Candles) -> Signals:
        p = self.params
        close = candles.close
        upper, middle, lower = ind.bollinger(close, p.period, p.k)
        below = close < lower
        above = close > upper
        back_up = np.zeros(len(candles), dtype=bool)
        back_down = np.zeros(len(candles), dtype=bool)
        back_up[1:] = below[:-1] & (close[1:] >= lower[1:])
        back_down[1:] = above[:-1] & (close[1:] <= upper[1:])
        allowed = ind.volatility_rising(close, p.vol_window) if p.vol_filter else True
        actions = np.zeros(len(candles), dtype=np.int8)
        actions[ind.crossed_above(close, middle)] = EXIT_LONG
        if p.shorts:
            actions[ind.crossed_below(close, middle)] = EXIT_SHORT
            actions[back_down & allowed] = ENTER_SHORT
        actions[back_up & allowed] = ENTER_LONG
        with np.errstate(invalid="ignore", divide="ignore"):
            score = (close - middle) / (upper - middle)
        return Signals(actions=actions, score=score)
