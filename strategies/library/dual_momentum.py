"""Dual momentum (Antonacci), long only.

Trades: hold the symbol while its momentum over ``window`` bars (close / close ``window`` bars
earlier − 1) is above zero, i.e. beats cash (absolute momentum) and, when peers are given, is
also the highest among the peers' momentum (relative momentum). Enter when that becomes true,
exit when it stops being true.

Relative momentum needs the peers' closes, which one symbol's candles do not carry. The runner
passes them as ``signals(candles, peer_closes={"ETHUSDT": array, ...})``: one float array per
peer symbol listed in the ``symbols`` parameter, **aligned to ``candles.open_time_ms``** (same
length; the close of the peer's candle with the same open time, forward-filled over a missing
candle, NaN before the peer's first candle). A peer whose momentum is NaN does not count.
Without ``peer_closes`` only absolute momentum is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from strategies.base import ENTER_LONG, EXIT_LONG, Candles, Signals, Strategy
from strategies.params import Params, param
from strategies.registry import register


@dataclasses.dataclass(frozen=True)
class DualMomentumParams(Params):
    window: int = param(12, min=1, max=1000, help="momentum lookback in bars",
                        grid=(6, 12, 24))
    symbols: tuple = param((), help="peer symbols for relative momentum, e.g. ETHUSDT,XRPUSDT")


def momentum(close: np.ndarray, window: int) -> np.ndarray:
    """close[i] / close[i - window] - 1, NaN for the first ``window`` bars."""
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > window:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[window:] = c[window:] / c[:-window] - 1.0
    return out


@register
class DualMomentum(Strategy):
    name = "dual_momentum"
    Params = DualMomentumParams

    def lookback(self) -> int:
        return self.params.window + 2

    def signals(
        self, candles: Candles, *, peer_closes: Mapping[str, np.ndarray] | None = None
    ) -> Signals:
        n = len(candles)
        own = momentum(candles.close, self.params.window)
        best_peer = np.full(n, -np.inf)
        for symbol, closes in (peer_closes or {}).items():
            closes = np.asarray(closes, dtype=np.float64)
            if closes.shape[0] != n:
                raise ValueError(
                    f"peer_closes[{symbol!r}] has {closes.shape[0]} values for {n} candles; "
                    "align peers to candles.open_time_ms first"
                )
            peer = momentum(closes, self.params.window)
            best_peer = np.fmax(best_peer, peer)  # fmax ignores NaN
        hold = (own > 0.0) & (own >= best_peer)
        actions = np.zeros(n, dtype=np.int8)
        actions[1:][hold[1:] & ~hold[:-1]] = ENTER_LONG
        actions[1:][~hold[1:] & hold[:-1]] = EXIT_LONG
        return Signals(actions=actions, score=own)
