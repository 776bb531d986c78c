"""Ensemble of six simple votes, weighted per config.

Each vote is -1, 0 or +1 on the close of every candle:

* ``trend``: close vs the previous close;
* ``momentum``: close vs the close ``momentum_bars`` (5) bars earlier;
* ``swing``: SMA(5) vs SMA(20);
* ``scalping``: this candle's change from the previous close beyond ±``scalp_pct`` (0.1 %);
* ``day``: close vs the previous trading day's last close (days from ``open_time_ms`` at
  00:00 UTC + ``day_offset_hours``; the current close stands for today's forming daily close);
* ``price_action``: close above the highest high (or below the lowest low) of the previous
  ``window`` candles.

The score is the weighted mean ``Σ wᵢ·voteᵢ / Σ wᵢ`` in [-1, 1] (``Signals.score``); it is
NaN until every vote with a non-zero weight has its data (the ``day`` vote needs the previous
day). Trades: enter long when the score reaches ``+threshold`` (from below), exit when it
reaches ``-threshold`` (from above); with ``shorts`` the latter enters short and the former
covers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from strategies import indicators as ind
from strategies.base import ENTER_LONG, ENTER_SHORT, EXIT_LONG, Candles, Signals, Strategy
from strategies.library._common import previous_day_close, sign
from strategies.params import ParamError, Params, param
from strategies.registry import register

_WEIGHT = {"min": 0.0, "max": 10.0, "grid": (0.0, 0.5, 1.0)}


@dataclasses.dataclass(frozen=True)
class EnsembleParams(Params):
    w_trend: float = param(1.0, help="weight of close vs previous close", **_WEIGHT)
    w_momentum: float = param(1.0, help="weight of the momentum vote", **_WEIGHT)
    w_swing: float = param(1.0, help="weight of SMA 5 vs SMA 20", **_WEIGHT)
    w_scalping: float = param(1.0, help="weight of the ±scalp_pct bar change", **_WEIGHT)
    w_day: float = param(1.0, help="weight of close vs previous day's close", **_WEIGHT)
    w_price_action: float = param(1.0, help="weight of the window breakout", **_WEIGHT)
    threshold: float = param(0.2, min=0.01, max=1.0, help="score to enter (+) and exit (-)",
                             grid=(0.1, 0.2, 0.3, 0.5))
    momentum_bars: int = param(5, min=1, max=500, help="bars for the momentum vote")
    scalp_pct: float = param(0.1, min=0.0, max=50.0, help="bar change in % for the scalp vote")
    window: int = param(20, min=2, max=1000, help="bars for the price-action breakout")
    day_offset_hours: float = param(0.0, min=-12.0, max=14.0, help="day starts at UTC+offset")
    shorts: bool = param(False, help="enter short at -threshold instead of only exiting")

    def check(self) -> None:
        if self.weights().sum() <= 0:
            raise ParamError("at least one w_* weight must be above 0")

    def weights(self) -> np.ndarray:
        return np.array([self.w_trend, self.w_momentum, self.w_swing, self.w_scalping,
                         self.w_day, self.w_price_action])


@register
class Ensemble(Strategy):
    name = "ensemble"
    Params = EnsembleParams
    can_short = True

    def lookback(self) -> int:
        p = self.params
        # The day vote needs the previous day's last candle: a whole day of 1m candles.
        bars = max(p.momentum_bars + 1, 20, p.window + 1)
        if p.w_day > 0:
            bars = max(bars, 1440 + 1)
        return bars + 1

    def vote(self, k: int, candles: Candles) -> np.ndarray:
        """Vote ``k`` (in the order of the weights) per candle: -1, 0, +1, NaN in its warm-up.

        One at a time, so a year of 1m candles never holds the six (or their temporaries) at
        once: the signals of a year need 25 MB less than a (6, n) stack and its weighted copy.
        """
        p = self.params
        close = candles.close
        if k == 0:  # trend
            return sign(close - ind.shift(close))
        if k == 1:  # momentum
            return sign(close - ind.shift(close, p.momentum_bars))
        if k == 2:  # swing
            return sign(ind.sma(close, 5) - ind.sma(close, 20))
        if k == 3:  # scalping
            with np.errstate(invalid="ignore", divide="ignore"):
                change_pct = (close / ind.shift(close) - 1.0) * 100.0
            scalp = np.sign(np.where(np.abs(change_pct) > p.scalp_pct, change_pct, 0.0))
            scalp[np.isnan(change_pct)] = np.nan
            return scalp
        if k == 4:  # day
            return sign(close - previous_day_close(candles.open_time_ms, close,
                                                   p.day_offset_hours))
        if k == 5:  # price action
            high_before = ind.shift(ind.rolling_max(candles.high, p.window))
            low_before = ind.shift(ind.rolling_min(candles.low, p.window))
            breakout = np.where(close > high_before, 1.0,
                                np.where(close < low_before, -1.0, 0.0))
            breakout[np.isnan(high_before)] = np.nan
            return breakout
        raise IndexError(f"the ensemble has six votes (0..5); got {k}")

    def votes(self, candles: Candles) -> np.ndarray:
        """The six votes as a (6, n) array in the order of the weights (NaN in warm-up)."""
        return np.vstack([self.vote(k, candles) for k in range(6)])

    def signals(self, candles: Candles) -> Signals:
        p = self.params
        w = p.weights()
        # The weighted sum of the used votes (NaN if any is), accumulated vote by vote in the
        # weights' order from +0.0, as numpy sums a stack's rows: the same bits as that sum.
        score = np.zeros(len(candles))
        for k in np.flatnonzero(w > 0):
            vote = self.vote(int(k), candles)
            vote *= w[k]
            score += vote
            del vote
        score /= w.sum()
        thr = p.threshold
        actions = np.zeros(len(candles), dtype=np.int8)
        up = np.zeros(len(candles), dtype=bool)
        down = np.zeros(len(candles), dtype=bool)
        up[1:] = (score[1:] >= thr) & ~(score[:-1] >= thr) & ~np.isnan(score[:-1])
        down[1:] = (score[1:] <= -thr) & ~(score[:-1] <= -thr) & ~np.isnan(score[:-1])
        actions[down] = ENTER_SHORT if p.shorts else EXIT_LONG
        actions[up] = ENTER_LONG
        return Signals(actions=actions, score=score)
