"""Fixtures shared by the strategy tests: synthetic candles with known shapes."""

from __future__ import annotations

import numpy as np

from strategies.base import Candles
from strategies.tests.user_strategies import install  # noqa: F401  (fixture)

DAY0_MS = 1_699_920_000_000  # 2023-11-14 00:00 UTC, a day boundary
MINUTE_MS = 60_000


def random_walk(n: int, *, seed: int = 0, step_ms: int = MINUTE_MS, vol: float = 0.002,
                drift: float = 0.0, start_ms: int = DAY0_MS) -> Candles:
    """Seeded geometric random walk with consistent OHLC (open = previous close)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, vol, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, vol, n))
    volume = rng.uniform(1.0, 10.0, n)
    return Candles.from_arrays(start_ms + np.arange(n) * step_ms, open_, high, low, close, volume)


def from_returns(returns, *, step_ms: int = MINUTE_MS, start_ms: int = DAY0_MS) -> Candles:
    """Candles from a list of close-to-close returns (hypothesis feeds these)."""
    r = np.asarray(returns, dtype=np.float64)
    close = 100.0 * np.cumprod(1.0 + r)
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(r) * 0.5 + 0.001
    high = np.maximum(open_, close) * (1.0 + spread)
    low = np.minimum(open_, close) * (1.0 - spread)
    n = r.shape[0]
    times = start_ms + np.arange(n) * step_ms
    return Candles.from_arrays(times, open_, high, low, close, np.ones(n))


def bars(rows, *, step_ms: int = MINUTE_MS, start_ms: int = DAY0_MS) -> Candles:
    """Candles from hand-written ``(open, high, low, close)`` rows."""
    arr = np.asarray(rows, dtype=np.float64)
    n = arr.shape[0]
    return Candles.from_arrays(
        start_ms + np.arange(n) * step_ms, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.ones(n)
    )
