"""Larry Williams' volatility breakout, long only, on intraday candles.

Trades: each trading day (00:00 at UTC + ``utc_offset_hours``; 9 = KST, Upbit's day) the level
is ``today's open + k_value × yesterday's range`` (yesterday's high − low). Enter long when price
reaches the level; exit at the next day's open.

On candles (not ticks) the assumptions are:

* The decision is taken on the close of the first candle of the day whose **high** reaches the
  level, and fills at the next candle's open (the backtester's rule), not at the level itself:
  the fill is later and usually higher than a tick-level breakout would get.
* The exit is signalled on the close of the day's last candle, so it fills at the open of the
  next day's first candle: the "next day's open".
* Today's open is the open of the day's first candle in the data; yesterday's range needs a
  complete yesterday (its first candle opening exactly at the day's start and the day being the
  calendar day before), otherwise there is no trade that day.
* No entry on the day's last candle (it would exit at the same open).
* Meant for timeframes shorter than a day; the timeframe is inferred from the open times.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from strategies.base import ENTER_LONG, EXIT_LONG, Candles, Signals, Strategy
from strategies.library._common import day_keys, group_starts, last_bar_of_day
from strategies.params import Params, param
from strategies.registry import register
from strategies.trade_math import DAY_MS, HOUR_MS


@dataclasses.dataclass(frozen=True)
class VolatilityBreakoutParams(Params):
    k_value: float = param(0.5, min=0.05, max=3.0, help="share of yesterday's range",
                           grid=(0.3, 0.4, 0.5, 0.6, 0.7))
    utc_offset_hours: float = param(9.0, min=-12.0, max=14.0,
                                    help="trading day starts at 00:00 UTC+offset (9 = KST)")


@register
class VolatilityBreakout(Strategy):
    name = "volatility_breakout"
    Params = VolatilityBreakoutParams

    def lookback(self) -> int:
        # Today plus a complete yesterday on 1m candles (the shortest timeframe), plus one.
        return 2 * 1440 + 2

    def levels(self, candles: Candles) -> np.ndarray:
        """The breakout level per candle (NaN when yesterday is missing or partial)."""
        p = self.params
        t = np.asarray(candles.open_time_ms, dtype=np.int64)
        keys = day_keys(t, p.utc_offset_hours)
        starts, group = group_starts(keys)
        level = np.full(len(candles), np.nan)
        if starts.size < 2:
            return level
        day_high = np.maximum.reduceat(candles.high, starts)
        day_low = np.minimum.reduceat(candles.low, starts)
        offset = int(p.utc_offset_hours * HOUR_MS)
        complete = (t[starts] + offset) % DAY_MS == 0
        prev_range = np.full(starts.size, np.nan)
        prev_range[1:] = (day_high - day_low)[:-1]
        usable = np.zeros(starts.size, dtype=bool)
        usable[1:] = complete[:-1] & (keys[starts[1:]] - keys[starts[:-1]] == 1)
        prev_range[~usable] = np.nan
        day_open = candles.open[starts]
        return (day_open + p.k_value * prev_range)[group]

    def signals(self, candles: Candles) -> Signals:
        n = len(candles)
        actions = np.zeros(n, dtype=np.int8)
        if n == 0:
            return Signals(actions=actions, score=np.zeros(0))
        level = self.levels(candles)
        keys = day_keys(candles.open_time_ms, self.params.utc_offset_hours)
        starts, group = group_starts(keys)
        hit = candles.high >= level
        hits_so_far = np.cumsum(hit)
        before_day = np.where(starts > 0, hits_so_far[np.maximum(starts - 1, 0)], 0)[group]
        first_hit = hit & (hits_so_far - before_day == 1)
        last = last_bar_of_day(candles.open_time_ms, self.params.utc_offset_hours)
        actions[first_hit & ~last] = ENTER_LONG
        actions[last] = EXIT_LONG
        with np.errstate(invalid="ignore", divide="ignore"):
            score = candles.close / level - 1.0
        return Signals(actions=actions, score=score)
