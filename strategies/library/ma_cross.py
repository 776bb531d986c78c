"""Moving-average cross with a three-average trend check.

Trades: long when the short average crosses above the mid average while the short, mid and
long averages are all rising (each above its previous bar's value); short on the mirror image
(crossing below, all falling). A cross the other way without the trend check only exits.
Optional realized-volatility filter: new entries only while volatility is rising.
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
from strategies.params import ParamError, Params, param
from strategies.registry import register


@dataclasses.dataclass(frozen=True)
class MaCrossParams(Params):
    short: int = param(7, min=2, max=200, help="short average, bars", grid=(5, 7, 10))
    mid: int = param(20, min=3, max=500, help="mid average, bars", grid=(20, 30))
    long: int = param(60, min=4, max=1000, help="long average, bars (120 also common)",
                      grid=(60, 120))
    ma_type: str = param("sma", choices=("sma", "ema"), help="simple or exponential averages")
    vol_filter: bool = param(False, help="enter only while realized volatility is rising")
    vol_window: int = param(20, min=2, max=500, help="bars in the realized volatility")

    def check(self) -> None:
        if not self.short < self.mid < self.long:
            raise ParamError(
                f"averages must satisfy short < mid < long; got {self.short}, {self.mid}, "
                f"{self.long}"
            )


@register
class MaCross(Strategy):
    name = "ma_cross"
    Params = MaCrossParams
    can_short = True

    def _average(self, close: np.ndarray, period: int) -> np.ndarray:
        return ind.ema(close, period) if self.params.ma_type == "ema" else ind.sma(close, period)

    def lookback(self) -> int:
        p = self.params
        bars = ind.ema_bars(p.long) if p.ma_type == "ema" else p.long
        if p.vol_filter:
            bars = max(bars, p.vol_window + 2)
        return bars + 2

    def signals(self, candles: Candles) -> Signals:
        p = self.params
        close = candles.close
        fast = self._average(close, p.short)
        mid = self._average(close, p.mid)
        slow = self._average(close, p.long)
        n = len(candles)
        rising = np.zeros(n, dtype=bool)
        falling = np.zeros(n, dtype=bool)
        if n > 1:
            rising[1:] = (fast[1:] > fast[:-1]) & (mid[1:] > mid[:-1]) & (slow[1:] > slow[:-1])
            falling[1:] = (fast[1:] < fast[:-1]) & (mid[1:] < mid[:-1]) & (slow[1:] < slow[:-1])
        up = ind.crossed_above(fast, mid)
        down = ind.crossed_below(fast, mid)
        allowed = ind.volatility_rising(close, p.vol_window) if p.vol_filter else True
        actions = np.zeros(n, dtype=np.int8)
        actions[up] = EXIT_SHORT
        actions[down] = EXIT_LONG
        actions[up & rising & allowed] = ENTER_LONG
        actions[down & falling & allowed] = ENTER_SHORT
        return Signals(actions=actions, score=fast - mid)
