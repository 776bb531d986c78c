"""Technical indicators on numpy arrays, following TA-Lib's conventions.

Every function takes float arrays (anything ``np.asarray`` accepts), never modifies them, and
returns float64 arrays of the same length with NaN during the warm-up. Value ``i`` uses inputs
``[0, i]`` only. Conventions, as in TA-Lib: EMA is seeded with the SMA of its first ``period``
values; Bollinger bands use the population standard deviation; RSI and ATR use Wilder's
smoothing (alpha = 1 / period) seeded with a simple average.

Each docstring states two numbers:

* *leading NaNs*: how many values at the start are NaN;
* *bars for a final value*: how many newest bars a caller needs so that the newest value equals
  the value computed on the whole history (what a strategy's ``lookback()`` adds up). Recursive
  indicators (EMA, RSI, ATR, MACD) never forget entirely; for them the figure is the count after
  which the seed's influence is below 1e-13 relative (TA-Lib calls this the unstable period).

Loops that numpy cannot vectorize (recursions, rolling windows) are small kernels compiled with
numba when it is installed (:mod:`strategies._jit`), in :mod:`strategies.indicator_kernels`;
results are the same without it.

Pure: numpy and the standard library only.
"""

from __future__ import annotations

import math

import numpy as np

from strategies.indicator_kernels import (
    ema_kernel,
    rolling_extreme_kernel,
    rolling_std_kernel,
    wilder_kernel,
    window_sums,
)

#: Relative influence of an old seed below which a recursive indicator counts as converged.
CONVERGED = 1e-13


def _f64(values) -> np.ndarray:
    """A float64 view or copy of ``values``; callers never write into it."""
    return np.asarray(values, dtype=np.float64)


def _check_period(period: int, minimum: int = 1) -> int:
    if int(period) != period or period < minimum:
        raise ValueError(f"period must be a whole number of at least {minimum}; got {period!r}")
    return int(period)


def recursive_bars(alpha: float) -> int:
    """Bars after which a seed's weight ``(1 - alpha) ** k`` drops below :data:`CONVERGED`."""
    if alpha >= 1.0:
        return 1
    return math.ceil(math.log(CONVERGED) / math.log(1.0 - alpha))


# ---------------------------------------------------------------------------- averages


def sma(values, period: int) -> np.ndarray:
    """Simple moving average. Leading NaNs: ``period - 1``. Bars for a final value: ``period``.

    Each window is summed on its own (no running total), so the value is bit-identical however
    much history precedes it, and a window that holds a NaN gives NaN without affecting others.
    """
    period = _check_period(period)
    x = _f64(values)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < period:
        return out
    return window_sums(x, period) / period


def ema(values, period: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the SMA (TA-Lib).

    Leading NaNs: ``period - 1`` (plus any leading NaNs of the input, which are skipped).
    Bars for a final value: ``period - 1 + recursive_bars(2 / (period + 1))``.
    """
    period = _check_period(period)
    return ema_kernel(_f64(values), period, 2.0 / (period + 1))


def ema_bars(period: int) -> int:
    return period - 1 + recursive_bars(2.0 / (period + 1))


def wma(values, period: int) -> np.ndarray:
    """Linearly weighted moving average (weights 1..period, newest heaviest).

    Leading NaNs: ``period - 1``. Bars for a final value: ``period``.
    """
    period = _check_period(period)
    x = _f64(values)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < period:
        return out
    weights = np.arange(period, 0, -1, dtype=np.float64)  # convolve flips: newest gets `period`
    out[period - 1 :] = np.convolve(x, weights, mode="valid") / weights.sum()
    return out


def rolling_std(values, period: int) -> np.ndarray:
    """Population standard deviation over ``period`` values.

    Leading NaNs: ``period - 1``. Bars for a final value: ``period``.
    """
    period = _check_period(period)
    return rolling_std_kernel(_f64(values), period)


def bollinger(
    values, period: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands ``(upper, middle, lower)``: SMA ± k population standard deviations.

    Leading NaNs: ``period - 1``. Bars for a final value: ``period``.
    """
    middle = sma(values, period)
    width = k * rolling_std(values, period)
    return middle + width, middle, middle - width


# ---------------------------------------------------------------------------- oscillators


def rsi(values, period: int = 14) -> np.ndarray:
    """Wilder's RSI, 0..100 (TA-Lib: averages seeded with the mean of the first ``period`` changes).

    Leading NaNs: ``period``. Bars for a final value: ``period + 1 + recursive_bars(1/period)``.
    A window with no losses gives 100, with no change at all gives 0 (as TA-Lib).
    """
    period = _check_period(period)
    x = _f64(values)
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n <= period:
        return out
    change = np.empty(n)
    change[0] = np.nan
    change[1:] = np.diff(x)
    gain = wilder_kernel(np.where(change > 0, change, 0.0), period, 1)
    loss = wilder_kernel(np.where(change < 0, -change, 0.0), period, 1)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, 100.0 * gain / total, 0.0)
    out[period:] = value[period:]
    return out


def rsi_bars(period: int) -> int:
    return period + 1 + recursive_bars(1.0 / period)


def macd(
    values, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD ``(macd, signal, histogram)`` as TA-Lib computes it.

    Like TA-Lib, both averages start at the same bar: the fast EMA is seeded with the SMA of the
    ``fast`` values ending at bar ``slow - 1``, and the signal EMA runs over the MACD line.
    Leading NaNs: ``slow + signal - 2``.
    Bars for a final value: ``slow + signal - 2 + recursive_bars(2 / (fast + 1))``.
    """
    fast = _check_period(fast)
    slow = _check_period(slow)
    signal = _check_period(signal)
    if fast > slow:
        fast, slow = slow, fast  # TA-Lib swaps them too
    x = _f64(values)
    n = x.shape[0]
    nan = np.full(n, np.nan)
    if n < slow + signal - 1:
        return nan, nan.copy(), nan.copy()
    slow_ema = ema_kernel(x, slow, 2.0 / (slow + 1))
    masked = x.copy()
    masked[: slow - fast] = np.nan
    fast_ema = ema_kernel(masked, fast, 2.0 / (fast + 1))
    line = fast_ema - slow_ema
    sig = ema_kernel(line, signal, 2.0 / (signal + 1))
    line[: slow + signal - 2] = np.nan
    hist = line - sig
    return line, sig, hist


def macd_bars(fast: int = 12, slow: int = 26, signal: int = 9) -> int:
    return max(fast, slow) + signal - 2 + recursive_bars(2.0 / (min(fast, slow) + 1))


def roc(values, period: int = 10) -> np.ndarray:
    """Rate of change in percent: ``(x[i] / x[i - period] - 1) * 100`` (TA-Lib ROC).

    Leading NaNs: ``period``. Bars for a final value: ``period + 1``.
    """
    period = _check_period(period)
    x = _f64(values)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > period:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[period:] = (x[period:] / x[:-period] - 1.0) * 100.0
    return out


# ---------------------------------------------------------------------------- ranges


def true_range(high, low, close) -> np.ndarray:
    """True range: max(high - low, |high - previous close|, |low - previous close|).

    Leading NaNs: 1 (TA-Lib's TRANGE has no value for the first bar). Bars for a final value: 2.
    """
    h, lo, c = _f64(high), _f64(low), _f64(close)
    out = np.full(h.shape[0], np.nan)
    if h.shape[0] > 1:
        prev = c[:-1]
        gap = np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev))
        out[1:] = np.maximum(h[1:] - lo[1:], gap)
    return out


def atr(high, low, close, period: int = 14) -> np.ndarray:
    """Wilder's average true range, seeded with the mean of the first ``period`` true ranges.

    Leading NaNs: ``period``. Bars for a final value: ``period + 1 + recursive_bars(1/period)``.
    """
    period = _check_period(period)
    return wilder_kernel(true_range(high, low, close), period, 1)


def atr_bars(period: int) -> int:
    return period + 1 + recursive_bars(1.0 / period)


def rolling_max(values, period: int) -> np.ndarray:
    """Highest value over the last ``period`` values (TA-Lib MAX).

    Leading NaNs: ``period - 1``. Bars for a final value: ``period``.
    """
    period = _check_period(period)
    return rolling_extreme_kernel(_f64(values), period, True)


def rolling_min(values, period: int) -> np.ndarray:
    """Lowest value over the last ``period`` values (TA-Lib MIN).

    Leading NaNs: ``period - 1``. Bars for a final value: ``period``.
    """
    period = _check_period(period)
    return rolling_extreme_kernel(_f64(values), period, False)


def donchian(high, low, period: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel ``(upper, middle, lower)``: highest high, midpoint, lowest low.

    Includes the current bar (compare a close with the *previous* bar's channel for a breakout).
    Leading NaNs: ``period - 1``. Bars for a final value: ``period``.
    """
    upper = rolling_max(high, period)
    lower = rolling_min(low, period)
    return upper, (upper + lower) / 2.0, lower


def realized_volatility(close, period: int = 20) -> np.ndarray:
    """Population standard deviation of the last ``period`` log returns (per bar, a fraction).

    Multiply by ``sqrt(bars per year)`` to annualize. Leading NaNs: ``period``.
    Bars for a final value: ``period + 1``.
    """
    period = _check_period(period, minimum=2)
    c = _f64(close)
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > period:
        with np.errstate(invalid="ignore", divide="ignore"):
            log_ret = np.log(c[1:] / c[:-1])
        out[1:] = rolling_std_kernel(log_ret, period)
    return out


def volatility_rising(close, period: int = 20) -> np.ndarray:
    """The realized-volatility filter: True where volatility is higher than one bar earlier.

    False during the warm-up. Bars for a final value: ``period + 2``.
    """
    vol = realized_volatility(close, period)
    out = np.zeros(vol.shape[0], dtype=bool)
    out[1:] = vol[1:] > vol[:-1]  # NaN comparisons are False
    return out


# ---------------------------------------------------------------------------- crosses


def _as_series(values, n: int) -> np.ndarray:
    arr = _f64(values)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    return arr


def crossed_above(a, b) -> np.ndarray:
    """True at ``i`` when ``a[i] > b[i]`` and ``a[i-1] <= b[i-1]`` (``b`` may be a number).

    False at bar 0 and wherever a NaN is involved. Bars for a final value: 2.
    """
    x = _f64(a)
    y = _as_series(b, x.shape[0])
    out = np.zeros(x.shape[0], dtype=bool)
    out[1:] = (x[1:] > y[1:]) & (x[:-1] <= y[:-1])
    return out


def crossed_below(a, b) -> np.ndarray:
    """True at ``i`` when ``a[i] < b[i]`` and ``a[i-1] >= b[i-1]`` (``b`` may be a number).

    False at bar 0 and wherever a NaN is involved. Bars for a final value: 2.
    """
    x = _f64(a)
    y = _as_series(b, x.shape[0])
    out = np.zeros(x.shape[0], dtype=bool)
    out[1:] = (x[1:] < y[1:]) & (x[:-1] >= y[:-1])
    return out


def shift(values, bars: int = 1) -> np.ndarray:
    """``values`` moved ``bars`` later (value ``i`` is input ``i - bars``), NaN at the start."""
    x = _f64(values)
    out = np.full(x.shape[0], np.nan)
    if bars < x.shape[0]:
        out[bars:] = x[: x.shape[0] - bars]
    return out
