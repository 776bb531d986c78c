"""Mark price, index price and funding of the simulated USDⓈ-M perpetuals.

Binance marks positions to a *mark price* built from an index of spot venues plus the
contract's premium; it is what unrealized PnL and liquidation use. Here, per symbol and
deterministically from the venue's own trades (which depend only on the seed and the clock):

* index = an exponential moving average of the trade price (time constant ``index_tau_s``,
  60 s): a smoothed, lagging view of the trade price, standing in for the spot index;
* premium = an exponential moving average (``premium_tau_s``, 300 s) of ``last / index - 1``,
  plus a small seed-derived offset, clamped to +-0.5 %;
* mark = index * (1 + premium);
* funding rate (per 8 h) = the premium averaged over the current funding period plus
  ``clamp(0.01 % - premium, -0.05 %, +0.05 %)`` (Binance's interest-rate term), capped at
  +-0.75 %; settled every 8 h at 00:00 / 08:00 / 16:00 UTC (``next_funding_ms``).

Tests may pin the mark price or the rate (:meth:`MarkBook.pin`) to make them diverge from the
last trade on purpose.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

FUNDING_INTERVAL_MS = 8 * 3_600_000
INTEREST = 0.0001  # Binance's default interest rate per 8 h (0.01 %)
FUNDING_CAP = 0.0075
PREMIUM_CLAMP = 0.005


def next_funding_ms(now_ms: int) -> int:
    """The next funding time strictly after ``now_ms``: 00:00, 08:00 or 16:00 UTC."""
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclasses.dataclass
class MarkState:
    """One symbol's running mark: updated per trade, read by REST and the stream."""

    index: float
    premium: float
    offset: float  # seed-derived standing premium (fraction)
    updated_ms: int
    period_start_ms: int
    premium_sum: float = 0.0  # time-weighted premium over the funding period so far
    premium_ms: int = 0
    accrued_ms: int = 0  # the premium is accumulated up to here
    pinned_mark: float | None = None
    pinned_rate: float | None = None

    @property
    def mark(self) -> float:
        if self.pinned_mark is not None:
            return self.pinned_mark
        return self.index * (1.0 + _clamp(self.premium + self.offset, -PREMIUM_CLAMP,
                                          PREMIUM_CLAMP))

    @property
    def funding_rate(self) -> float:
        if self.pinned_rate is not None:
            return self.pinned_rate
        avg = self.premium_sum / self.premium_ms if self.premium_ms else self.premium
        avg += self.offset
        return _clamp(avg + _clamp(INTEREST - avg, -0.0005, 0.0005), -FUNDING_CAP, FUNDING_CAP)


class MarkBook:
    """The mark state of every symbol of one venue."""

    def __init__(self, markets: dict, seed: int, now_ms: int, *, index_tau_s: float = 60.0,
                 premium_tau_s: float = 300.0) -> None:
        self.index_tau_ms = index_tau_s * 1000.0
        self.premium_tau_ms = premium_tau_s * 1000.0
        self.states: dict[str, MarkState] = {}
        for symbol, market in markets.items():
            # A standing premium of -2 .. +3 basis points, fixed by the seed and the symbol.
            offset = ((zlib.crc32(f"{seed}:{symbol}:premium".encode()) % 501) - 200) / 1e6
            period = next_funding_ms(now_ms) - FUNDING_INTERVAL_MS
            self.states[symbol] = MarkState(index=float(market.last_price), premium=0.0,
                                            offset=offset, updated_ms=now_ms,
                                            period_start_ms=period, accrued_ms=now_ms)

    def on_trades(self, symbol: str, ts, prices) -> None:
        """Fold new trades (arrays of ms and prices, oldest first) into the symbol's state."""
        state = self.states[symbol]
        for t, p in zip(ts, prices, strict=True):
            t, price = int(t), float(p)
            self._advance(state, t)
            if not (price > 0 and math.isfinite(price)):
                continue
            dt = max(0, t - state.updated_ms) + 1  # +1: a trade at the same ms still counts
            state.premium += (price / state.index - 1.0 - state.premium) * (
                1.0 - math.exp(-dt / self.premium_tau_ms))
            state.index += (price - state.index) * (1.0 - math.exp(-dt / self.index_tau_ms))
            state.updated_ms = max(state.updated_ms, t)

    def _advance(self, state: MarkState, now_ms: int) -> None:
        """Accumulate the premium up to ``now_ms``; a new funding period starts afresh."""
        start = next_funding_ms(state.period_start_ms)
        if now_ms >= start:
            state.period_start_ms = start + (now_ms - start) // FUNDING_INTERVAL_MS * \
                FUNDING_INTERVAL_MS
            state.premium_sum, state.premium_ms = 0.0, 0
        last = max(state.accrued_ms, state.period_start_ms)
        if now_ms > last:
            state.premium_sum += state.premium * (now_ms - last)
            state.premium_ms += now_ms - last
            state.accrued_ms = now_ms

    def state(self, symbol: str, now_ms: int) -> MarkState:
        state = self.states[symbol]
        self._advance(state, now_ms)
        return state

    def pin(self, symbol: str, *, mark: float | None = None, rate: float | None = None) -> None:
        """Hold the mark price and/or the funding rate of ``symbol`` (None: follow trades)."""
        state = self.states[symbol]
        state.pinned_mark, state.pinned_rate = mark, rate
