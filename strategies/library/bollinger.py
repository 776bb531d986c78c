"""Bollinger-band mean reversion.

Trades: long when a close back inside the lower band follows a close below it, short when a
close back inside the upper band follows a close above it. ``exit`` says where the strategy
leaves: ``middle`` (the default) exits a long when the close crosses above the middle band and
a short when it crosses below; ``opposite`` waits for the opposite band (a long exits when the
close crosses above the upper band, a short below the lower band); ``none`` gives no exit signal
at all, leaving exits to the config's stop-loss, take-profit and trailing stop. Optional
realized-volatility filter: enter only while volatility is rising. Bands: SMA(period) ± k
population stdev (TA-Lib).
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

#: ``exit`` values: the middle band, the opposite band, no exit signal.
EXITS = ("middle", "opposite", "none")


@dataclasses.dataclass(frozen=True)
class BollingerParams(Params):
    period: int = param(20, min=2, max=500, help="bars in the bands", grid=(14, 20, 30))
    k: float = param(2.0, min=0.1, max=5.0, help="band width in standard deviations",
                     grid=(1.5, 2.0, 2.5))
    shorts: bool = param(True, help="also trade the upper band short")
    vol_filter: bool = param(False, help="enter only while realized volatility is rising")
    vol_window: int = param(20, min=2, max=500, help="bars in the realized volatility")
    exit: str = param(
        "middle", choices=EXITS,
        help="where a position exits: middle band, opposite band, or none (stop, target and "
        "trailing stop only)",
    )


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
        if p.exit != "none":
            long_exit, short_exit = (middle, middle) if p.exit == "middle" else (upper, lower)
            actions[ind.crossed_above(close, long_exit)] = EXIT_LONG
            if p.shorts:
                actions[ind.crossed_below(close, short_exit)] = EXIT_SHORT
        if p.shorts:
            actions[back_down & allowed] = ENTER_SHORT
        actions[back_up & allowed] = ENTER_LONG
        with np.errstate(invalid="ignore", divide="ignore"):
            score = (close - middle) / (upper - middle)
        return Signals(actions=actions, score=score)
