"""MACD entries with turtle-style pyramiding, long and short.

Trades, for a long (a short is the mirror image):

* **Episode.** An episode starts on the candle whose close crosses above the ``breakout``-bar
  SMA (20) and lasts while closes stay above it. At its start the strategy takes a **trial
  entry** of ``trial_units`` (0.5 unit).
* **Confirmation.** While only the trial is held, a MACD(12, 26, 9) cross above its signal line
  with the averages aligned (SMA ``trend_fast`` above SMA ``trend_slow``) adds
  ``confirm_units`` (1.5 units, so 2 in all).
* **Pyramiding.** Once confirmed, every further ``add_atr`` × ATR in favour (from the close of
  the last add) adds one unit, up to ``max_units`` (4).
* **Exit.** The whole position exits when the close falls back to the breakout SMA (the episode
  ends), when MACD crosses below its signal, or after ``max_hold_bars`` candles in the episode;
  after such an exit there is no new entry until the next episode.

A unit is sized by the runner: with the ``atr_unit`` sizing method one unit is
equity × risk% / ATR (× leverage), the turtle rule; ``Signals.size`` carries 0.5, 1.5, 1.0 for
the trial, the confirmation and each add (actions ENTER_*, ADD_*, ADD_* ...).

So that the newest decision depends on a bounded history (``lookback()``), the ATR here is the
simple mean of the true range over ``atr_period`` candles (turtle's N without Wilder's infinite
memory), and an episode that started before the available history is ignored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from strategies import indicators as ind
from strategies._jit import njit
from strategies.base import (
    ADD_LONG,
    ADD_SHORT,
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
class MacdTurtleParams(Params):
    fast: int = param(12, min=2, max=200, help="MACD fast EMA", grid=(8, 12))
    slow: int = param(26, min=3, max=400, help="MACD slow EMA", grid=(21, 26))
    signal: int = param(9, min=2, max=100, help="MACD signal EMA")
    breakout: int = param(20, min=2, max=500, help="SMA whose breakout starts an episode",
                          grid=(10, 20, 40))
    trend_fast: int = param(20, min=2, max=500, help="faster trend SMA for alignment")
    trend_slow: int = param(60, min=3, max=1000, help="slower trend SMA for alignment")
    atr_period: int = param(20, min=2, max=500, help="bars in the ATR (simple mean of TR)")
    add_atr: float = param(1.0, min=0.1, max=10.0, help="ATRs in favour per pyramid add",
                           grid=(0.5, 1.0, 2.0))
    trial_units: float = param(0.5, min=0.05, max=4.0, help="units of the trial entry")
    confirm_units: float = param(1.5, min=0.05, max=4.0, help="units added on confirmation")
    max_units: float = param(4.0, min=0.1, max=20.0, help="most units held")
    max_hold_bars: int = param(500, min=2, max=20_000, help="longest episode in candles")
    shorts: bool = param(True, help="also trade episodes below the breakout SMA")

    def check(self) -> None:
        if self.fast >= self.slow:
            raise ParamError(f"fast ({self.fast}) must be below slow ({self.slow})")
        if self.trend_fast >= self.trend_slow:
            raise ParamError(
                f"trend_fast ({self.trend_fast}) must be below trend_slow ({self.trend_slow})"
            )
        if self.trial_units + self.confirm_units > self.max_units:
            raise ParamError("trial_units + confirm_units must not exceed max_units")


@njit(aot="Tuple((i1[:], f8[:]))(f8[:], f8[:], b1[:], b1[:], f8[:], f8[:], f8, f8, f8, f8, i8, "
          "b1)")
def _turtle_kernel(close, base, macd_up, macd_down, trend, atr, trial, confirm, max_units,
                   add_atr, max_hold, shorts):
    n = close.shape[0]
    actions = np.zeros(n, dtype=np.int8)
    size = np.zeros(n)
    side = 0          # episode side: 1 above the SMA, -1 below, 0 none
    start = 0
    units = 0.0
    last_add = 0.0
    for i in range(1, n):
        c = close[i]
        b = base[i]
        pb = base[i - 1]
        if np.isnan(b) or np.isnan(pb):
            continue
        above = c > b
        below = c < b
        if side != 0:
            ended = (side == 1 and not above) or (side == -1 and not below)
            if ended:
                if units > 0.0:
                    actions[i] = EXIT_LONG if side == 1 else EXIT_SHORT
                side = 0
                units = 0.0
            elif units > 0.0:
                cross_against = macd_down[i] if side == 1 else macd_up[i]
                if i - start >= max_hold or cross_against:
                    actions[i] = EXIT_LONG if side == 1 else EXIT_SHORT
                    units = 0.0  # done until the next episode
                elif units < trial + confirm - 1e-12:
                    cross_with = macd_up[i] if side == 1 else macd_down[i]
                    if cross_with and trend[i] == side:
                        actions[i] = ADD_LONG if side == 1 else ADD_SHORT
                        size[i] = confirm
                        units += confirm
                        last_add = c
                elif (
                    units + 1.0 <= max_units + 1e-12
                    and atr[i] > 0.0
                    and side * (c - last_add) >= add_atr * atr[i]
                ):
                    actions[i] = ADD_LONG if side == 1 else ADD_SHORT
                    size[i] = 1.0
                    units += 1.0
                    last_add = c
            if side != 0:
                continue
        prev_close = close[i - 1]
        if above and prev_close <= pb:
            side = 1
        elif below and prev_close >= pb and shorts:
            side = -1
        else:
            continue
        start = i
        units = trial
        last_add = c
        actions[i] = ENTER_LONG if side == 1 else ENTER_SHORT
        size[i] = trial
    return actions, size


@register
class MacdTurtle(Strategy):
    name = "macd_turtle"
    Params = MacdTurtleParams
    can_short = True

    def _warmup(self) -> int:
        p = self.params
        return max(ind.macd_bars(p.fast, p.slow, p.signal), p.trend_slow, p.breakout,
                   p.atr_period + 1)

    def lookback(self) -> int:
        return self.params.max_hold_bars + self._warmup() + 2

    def signals(self, candles: Candles) -> Signals:
        p = self.params
        close = candles.close
        line, sig, hist = ind.macd(close, p.fast, p.slow, p.signal)
        trend = np.sign(ind.sma(close, p.trend_fast) - ind.sma(close, p.trend_slow))
        trend = np.nan_to_num(trend, nan=0.0)
        atr = ind.sma(ind.true_range(candles.high, candles.low, close), p.atr_period)
        actions, size = _turtle_kernel(
            np.asarray(close, dtype=np.float64), ind.sma(close, p.breakout),
            ind.crossed_above(line, sig), ind.crossed_below(line, sig), trend,
            np.nan_to_num(atr, nan=0.0), p.trial_units, p.confirm_units, p.max_units,
            p.add_atr, p.max_hold_bars, p.shorts,
        )
        return Signals(actions=actions, score=hist, size=size)
